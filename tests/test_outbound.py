"""The outbound client: where Skyline may call, for how long, and how much it reads.

The tests run with OUTBOUND_ALLOW_PRIVATE on (their stand-ins are on loopback); each test of the
policy turns it off, as it is in production, and shows the loopback stand-in is never reached.
"""

import socket
import threading
import time

import pytest
from django.test import Client

from skyline.atproto import outbound
from tests.support.pds import Pds
from tests.support.servers import InternalService, LoopbackServer, json_response
from tests.support.stores import BOTH_STORES


class Recorder(LoopbackServer):
    """Answers {"ok": true} to anything, keeping every request (so a test can show none came)."""

    def handle(self, request):
        return json_response({"ok": True})


@pytest.fixture
def production(settings):
    settings.OUTBOUND_ALLOW_PRIVATE = False


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.0.0.2", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "100.127.255.254", "0.0.0.0", "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::1",
    "2001::1", "::127.0.0.1", "not an address",
])
def test_internal_and_special_addresses_are_not_public(address):
    assert not outbound.is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808", "2002:808:808::1"])
def test_public_unicast_addresses_are_public(address):
    assert outbound.is_public_address(address)


@pytest.mark.parametrize("host", ["localhost", "LocalHost", "127.0.0.1", "127.1", "0x7f000001",
                                  "2130706433", "127.0.0.2", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0"])
def test_every_spelling_of_loopback_is_refused_before_connecting(production, host):
    with Recorder() as server:
        port = server.url.rsplit(":", 1)[1]
        with pytest.raises(outbound.RefusedDestination, match="not a public internet address"):
            with outbound.Client(f"https://{host}:{port}") as client:
                client.request("GET", "/xrpc/com.atproto.server.describeServer")
        assert server.requests == []


@pytest.fixture
def dns(monkeypatch):
    """A DNS stand-in: names in the returned dict resolve to the addresses listed for them in turn."""
    answers, real = {}, socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return real(answers[host].pop(0), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_name_is_resolved_once_and_connected_at_the_address_it_resolved_to(dns):
    # The second answer would point elsewhere: the connection must use the first, the one checked.
    dns["pds.rebind.test"] = ["127.0.0.1", "10.9.9.9"]
    with Recorder() as server:
        port = server.url.rsplit(":", 1)[1]
        with outbound.Client(f"http://pds.rebind.test:{port}") as client:
            assert client.request("GET", "/xrpc/x").json() == {"ok": True}
        assert dns["pds.rebind.test"] == ["10.9.9.9"]
        assert server.requests[0].headers["Host"] == f"pds.rebind.test:{port}"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::ffff:127.0.0.1", "::1"])
def test_a_name_that_resolves_to_an_internal_address_is_refused(production, dns, address):
    dns["localhost."] = [address]
    dns["pds.example.com"] = [address]
    for name in ("localhost.", "pds.example.com"):
        with pytest.raises(outbound.RefusedDestination), outbound.Client(f"https://{name}") as client:
            client.request("GET", "/xrpc/x")


def test_network_destinations_must_be_https_and_are_cut_to_their_origin(production):
    with pytest.raises(outbound.RefusedDestination, match="not https"):
        outbound.Client("http://pds.example.com")
    for bad in ("ftp://pds.example.com", "https://user:pw@pds.example.com", "https://", "https://host:99999"):
        with pytest.raises(outbound.RefusedDestination):
            outbound.Client(bad)
    origin = outbound.origin("https://PDS.example.com:8443/internal/admin?x=1#")
    assert origin == "https://pds.example.com:8443"
    assert outbound.origin("https://[2606:4700::1]/x") == "https://[2606:4700::1]"


def test_operator_urls_are_trusted_as_given(production):
    with Recorder() as server, outbound.Client(f"{server.url}/prefix/", trusted=True) as client:
        assert client.request("GET", "/did:plc:x").status == 200
    assert server.requests[0].path == "/prefix/did:plc:x"


def test_a_server_trickling_its_answer_is_cut_off_at_the_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle():
        connection, _ = listener.accept()
        with connection:
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not stop.is_set():  # a byte now and then, each well within a per-read timeout
                connection.sendall(b"x")
                stop.wait(0.05)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        with outbound.Client(f"http://127.0.0.1:{listener.getsockname()[1]}") as client:
            with pytest.raises(outbound.OutboundError, match="did not answer in time"):
                client.request("GET", "/slow", seconds=0.5)
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_an_answer_over_its_cap_is_refused_and_redirects_are_not_followed():
    class Big(LoopbackServer):
        def handle(self, request):
            if request.path == "/moved":
                return 302, {"Location": f"{target.url}/secret"}, b""
            return 200, {"Content-Type": "application/json"}, b"[" + b"1," * 10_000 + b"1]"

    with Big() as server, Recorder() as target, outbound.Client(server.url) as client:
        with pytest.raises(outbound.TooLarge, match="over 1,000 bytes"):
            client.request("GET", "/big", limit=1000)
        assert len(client.request("GET", "/big", limit=100_000).json()) == 10_001
        assert client.request("GET", "/moved").status == 302
        assert target.requests == []


def test_allowing_private_destinations_says_so_in_the_log(caplog, monkeypatch):
    monkeypatch.setattr(outbound, "_warned", threading.Event())
    outbound.Client("http://127.0.0.1:9").close()
    assert [record.getMessage() for record in caplog.records if record.name == "skyline.atproto.outbound"] == [
        "OUTBOUND_ALLOW_PRIVATE is on: Skyline will call private and loopback addresses over http"
    ]


def test_only_a_few_turns_to_call_out_and_a_busy_answer_at_once_when_they_are_taken():
    entered, release = threading.Barrier(outbound.CALLING_OUT_TURNS + 1), threading.Event()

    def hold():
        with outbound.calling_out():
            entered.wait()
            release.wait()

    holders = [threading.Thread(target=hold) for _ in range(outbound.CALLING_OUT_TURNS)]
    for holder in holders:
        holder.start()
    entered.wait()
    with pytest.raises(outbound.Busy):
        with outbound.calling_out():
            pass
    release.set()
    for holder in holders:
        holder.join()
    with outbound.calling_out():
        assert time.monotonic()  # a turn is free again


# -- the measured attacks, end to end ------------------------------------------------------------

SNEAKY = "did:plc:sneakyaaaaaaaaaaaaaaaaaa"
CLEANUP = {
    "identifier": SNEAKY, "app_password": "guess-1234", "cleanup_types": ["post"], "delete_until_days_ago": 0,
}


def call_every_calling_out_endpoint(client):
    """(status, body) of /repo/{did}, /list/members and a clean-up dry run for SNEAKY."""
    answers = [
        client.get(f"/repo/{SNEAKY}"),
        client.get("/list/members", {"uri": f"at://{SNEAKY}/app.bsky.graph.list/3klist"}),
        client.post("/repo/cleanup", CLEANUP, content_type="application/json"),
    ]
    return [(answer.status_code, answer.json()) for answer in answers]


@pytest.mark.django_db
@pytest.mark.usefixtures("unpaced_repo_checkouts")
@pytest.mark.parametrize("pds, refusal", [
    ("http://127.0.0.1:{port}/internal/admin#", "the address is not https"),
    ("https://127.0.0.1:{port}/internal/admin#", "the address is not a public internet address"),
    ("https://localhost:{port}", "the address is not a public internet address"),
    ("https://127.0.0.2:{port}", "the address is not a public internet address"),
    ("https://[::ffff:127.0.0.1]:{port}", "the address is not a public internet address"),
    ("https://0x7f000001:{port}", "the address is not a public internet address"),
])
def test_a_did_document_naming_an_internal_pds_gets_no_call_to_it(client, plc, production, pds, refusal):
    with InternalService() as internal:
        plc.add(SNEAKY, pds=pds.format(port=internal.port))
        assert call_every_calling_out_endpoint(client) == [
            (502, {"error": f"Error getting repo from its PDS: {refusal}"}),
            (502, {"error": f"Error getting repo: {refusal}"}),
            (502, {"error": f"error cleaning up records: could not sign in: {refusal}"}),
        ]
        assert internal.requests == []


@pytest.mark.django_db
@pytest.mark.usefixtures("unpaced_repo_checkouts")
def test_an_upstream_answer_is_never_echoed_and_a_fragment_does_not_drop_the_xrpc_path(client, plc):
    with InternalService() as internal:
        plc.add(SNEAKY, pds=f"{internal.url}/internal/admin#")
        assert call_every_calling_out_endpoint(client) == [
            (502, {"error": "Error getting repo from its PDS: the server answered HTTP 500"}),
            (502, {"error": "Error getting repo: the server answered HTTP 500"}),
            (502, {"error": "error cleaning up records: could not sign in: the server answered HTTP 500"}),
        ]
        assert [request.path for request in internal.requests] == [
            "/xrpc/com.atproto.sync.getRepo",
            "/xrpc/com.atproto.sync.getRepo",
            "/xrpc/com.atproto.server.createSession",
        ]


@pytest.mark.django_db(databases=BOTH_STORES)
@pytest.mark.usefixtures("unpaced_repo_checkouts")
def test_with_every_upstream_slow_feeds_stats_and_the_admin_keep_answering(client, plc):
    class SlowPds(Pds):
        def get_repo(self, request):
            arrived.release()
            release.wait()
            return super().get_repo(request)

    arrived, release = threading.Semaphore(0), threading.Event()
    with SlowPds() as pds:
        account = pds.add_account("slow")
        pds.publish(plc, account)
        answers = []

        def export():
            answers.append(Client().get(f"/repo/{account.did}").status_code)

        waiting = [threading.Thread(target=export) for _ in range(outbound.CALLING_OUT_TURNS)]
        for thread in waiting:
            thread.start()
        for _ in waiting:
            assert arrived.acquire(timeout=30)
        try:
            busy = {"error": "too many requests are waiting on other services; try again shortly"}
            export = client.get(f"/repo/{account.did}")
            assert (export.status_code, export.json()) == (503, busy)
            members = client.get("/list/members", {"uri": f"at://{account.did}/app.bsky.graph.list/3kl"})
            assert (members.status_code, members.json()) == (503, busy)
            dry_run = client.post("/repo/cleanup", {**CLEANUP, "identifier": account.did},
                                  content_type="application/json")
            assert (dry_run.status_code, dry_run.json()) == (
                503, {"error": f"error cleaning up records: {busy['error']}"})
            assert client.get("/xrpc/app.bsky.feed.describeFeedGenerator").status_code == 200
            assert client.get("/api/stats").status_code == 200
            assert client.get("/admin/login/").status_code == 200
        finally:
            release.set()
            for thread in waiting:
                thread.join()
        assert answers == [200] * outbound.CALLING_OUT_TURNS


def self_signed(hostname):
    """(certificate PEM, key PEM) of a self-signed certificate for `hostname`."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def test_tls_to_the_pinned_address_still_checks_the_certificate_of_the_name(dns, monkeypatch, tmp_path):
    import ssl

    certificate, key = self_signed("pds.tls.test")
    (tmp_path / "cert.pem").write_bytes(certificate)
    (tmp_path / "key.pem").write_bytes(key)
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusting = ssl.create_default_context(cadata=certificate.decode())
    monkeypatch.setattr(outbound, "_ssl_context", lambda: trusting)
    dns["pds.tls.test"] = ["127.0.0.1"]
    with Recorder() as server:
        server._httpd.socket = serving.wrap_socket(server._httpd.socket, server_side=True)
        port = server.url.rsplit(":", 1)[1]
        with outbound.Client(f"https://pds.tls.test:{port}") as client:
            assert client.request("GET", "/xrpc/x").json() == {"ok": True}
        with pytest.raises(outbound.OutboundError, match="could not be reached"):
            # The certificate is not for this name.
            with outbound.Client(f"https://127.0.0.1:{port}") as client:
                client.request("GET", "/xrpc/x")
    assert server.requests[0].headers["Host"] == f"pds.tls.test:{port}"


def test_answers_are_asked_for_uncompressed_and_a_compressed_one_is_not_unfolded():
    import gzip

    class Bomb(LoopbackServer):
        def handle(self, request):
            return 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, gzip.compress(
                b"[" + b"0," * 5_000_000 + b"0]")

    with Bomb() as server, outbound.Client(server.url) as client:
        answer = client.request("GET", "/xrpc/x", limit=100_000)
        assert len(answer.content) < 100_000 and answer.json() is None
    assert server.requests[0].headers["Accept-Encoding"] == "identity"
