"""The one way out of Skyline: every HTTP call to another service goes through a `Client` from here.

Destinations come in two kinds. URLs the operator configured (PLC_URL, ENTRYWAY_URL,
HANDLE_RESOLVER_URL) are trusted as given. Destinations the network chooses (the PDS a DID
document names, a did:web host, a handle's domain) are reduced to their origin (scheme://host[:port],
so a path, query or `#` in them cannot change the URL we build) and must be https on a public
unicast address: the host is resolved once, every address it resolves to is checked, and the
connection goes to a checked address while Host and TLS SNI stay the hostname, so a second DNS
answer cannot slip an internal address in between the check and the connect. OUTBOUND_ALLOW_PRIVATE
lifts both rules for local stand-ins (tests, development) and says so in the log.

Every call has a total deadline (connecting, sending and every read count against it, so a server
trickling a byte a second is cut off) and a size cap for its kind of answer. Redirects are not
followed. Endpoints that call out take a turn in `calling_out` first, so slow strangers can hold at
most a few of a process's request threads.
"""

import contextlib
import contextvars
import functools
import ipaddress
import json
import logging
import socket
import threading
import time
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

USER_AGENT = "skyline/1.0"
# Size caps by kind of answer.
DOCUMENT_BYTES = 64 * 1024  # DID documents, handle answers
JSON_BYTES = 1024 * 1024  # XRPC JSON answers
REPO_BYTES = 200 * 1024 * 1024  # a whole repository export (the seed's crawler stopped at 100 MB)
# Total seconds per call, by kind.
DOCUMENT_SECONDS = 10.0
JSON_SECONDS = 30.0
REPO_SECONDS = 120.0
# Request threads that may wait on other services at once, per process: gunicorn runs 4 threads a
# worker and `serve` 8, so at least half of them always answer feeds, stats and the admin.
CALLING_OUT_TURNS = 2

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_deadline = contextvars.ContextVar("outbound_deadline", default=None)
_warned = threading.Event()


class OutboundError(Exception):
    """A call that failed: `status` is the upstream HTTP status, 0 when there was no answer.

    The message is Skyline's own words, safe to show a client; never the upstream's text.
    """

    def __init__(self, message, status=0):
        super().__init__(message)
        self.status = status


class RefusedDestination(OutboundError):
    """A destination the network chose that Skyline does not call (not https, not public)."""


class Unreachable(OutboundError):
    """The server could not be reached or did not answer in time (as opposed to answering wrongly)."""


class TooLarge(OutboundError):
    """An answer over the size cap of its kind."""


class Busy(Exception):
    """Every turn for calling out is taken; try again shortly."""


def is_public_address(address):
    """True for a public unicast address; IPv4 inside IPv6 (mapped, NAT64, 6to4) is judged as IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6:
        if ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        elif ip.sixtofour:
            ip = ip.sixtofour
        elif ip in _NAT64_LOCAL or ip.teredo:
            return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
        or ip in _CGNAT
    )


def _allow_private():
    if settings.OUTBOUND_ALLOW_PRIVATE and not _warned.is_set():
        _warned.set()
        logger.warning(
            "OUTBOUND_ALLOW_PRIVATE is on: Skyline will call private and loopback addresses over http"
        )
    return settings.OUTBOUND_ALLOW_PRIVATE


def origin(url):
    """scheme://host[:port] of a URL the network gave us; RefusedDestination unless it may be called."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        raise RefusedDestination("the address is not a valid URL") from None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("https", "http") or not host or "@" in parts.netloc:
        raise RefusedDestination("the address is not an http(s) URL with a host")
    if scheme != "https" and not _allow_private():
        raise RefusedDestination("the address is not https")
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _remaining(timeout, timed_out):
    """The socket timeout for the next step: `timeout`, shortened to what is left of the call's deadline."""
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise timed_out("the call ran past its deadline")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write counts against the call's deadline."""

    def __init__(self, stream):
        self._stream = stream

    def read(self, max_bytes, timeout=None):
        return self._stream.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer, timeout=None):
        self._stream.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self):
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        timeout = _remaining(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info):
        return self._stream.get_extra_info(info)


class _Backend(httpcore.SyncBackend):
    """Resolves the host once, checks every address (when `checked`), connects to a checked one."""

    def __init__(self, checked):
        self._checked = checked

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise httpcore.ConnectError(f"{host} does not resolve") from None
        addresses = list(dict.fromkeys(info[4][0] for info in found))
        if self._checked and not all(is_public_address(address) for address in addresses):
            raise RefusedDestination("the address is not a public internet address")
        error = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                stream = super().connect_tcp(
                    address, port, _remaining(timeout, httpcore.ConnectTimeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _Stream(stream)
        raise error


@functools.cache
def _ssl_context():
    return httpx.create_ssl_context(trust_env=False)


class _Transport(httpx.HTTPTransport):
    """httpx's transport over an httpcore pool with our network backend. httpx (pinned) takes no
    backend of its own, and its transport's whole state is that pool, so it is built here instead."""

    def __init__(self, checked):  # the parent's __init__ would only build a pool to throw away
        self._pool = httpcore.ConnectionPool(ssl_context=_ssl_context(), network_backend=_Backend(checked))


class Answer:
    """An upstream answer read within its cap: `status`, `headers`, `content`."""

    def __init__(self, status, headers, content):
        self.status = status
        self.headers = headers
        self.content = content

    def json(self):
        """The body as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.content)
        except (ValueError, RecursionError):
            return None


class Client:
    """HTTP calls to one service. `trusted` for operator-configured URLs, which keep their path and
    may be anywhere; any other URL is cut to its origin and held to the public-address policy."""

    def __init__(self, url, trusted=False):
        if trusted:
            self.base = str(url).rstrip("/")
            checked = False
        else:
            self.base = origin(url)
            checked = not _allow_private()
        self._http = httpx.Client(
            transport=_Transport(checked),
            # Uncompressed answers only, read raw: a small compressed body cannot unfold past a cap.
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(JSON_SECONDS),
            follow_redirects=False,
            trust_env=False,
        )

    def close(self):
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    @contextlib.contextmanager
    def stream(self, method, path, *, limit, seconds, **kwargs):
        """(status, headers, chunks) of a call; reading `chunks` past `limit` bytes raises OutboundError."""
        token = _deadline.set(time.monotonic() + seconds)
        try:
            with self._http.stream(method, f"{self.base}{path}", **kwargs) as response:
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > limit:
                    raise TooLarge(f"the answer is over {limit:,} bytes", response.status_code)
                yield response.status_code, response.headers, _capped(response.iter_raw(), limit, response)
        except httpx.TimeoutException:
            raise Unreachable("the server did not answer in time") from None
        except httpx.HTTPError:
            raise Unreachable("the server could not be reached") from None
        finally:
            _deadline.reset(token)

    def request(self, method, path, *, limit=JSON_BYTES, seconds=JSON_SECONDS, **kwargs):
        """The whole Answer of a call, its body at most `limit` bytes."""
        with self.stream(method, path, limit=limit, seconds=seconds, **kwargs) as (status, headers, chunks):
            return Answer(status, headers, b"".join(chunks))


def _capped(chunks, limit, response):
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the answer is over {limit:,} bytes", response.status_code)
        yield chunk


_turns = threading.BoundedSemaphore(CALLING_OUT_TURNS)


@contextlib.contextmanager
def calling_out():
    """A turn to wait on another service, or Busy at once when every turn is taken."""
    if not _turns.acquire(blocking=False):
        raise Busy("too many requests are waiting on other services; try again shortly")
    try:
        yield
    finally:
        _turns.release()
