"""The Jetstream client reads its connection itself (websockets' Sans-I/O layer over a socket): what a
server may do on the wire, against real websocket servers on loopback: fragmented messages, pings, a
refused handshake, an oversized message, a clean or abrupt close, a quiet or silent stream, and a
client that leaves."""

import datetime
import socket
import ssl
import threading
from contextlib import closing, contextmanager
from http import HTTPStatus

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.sync.server import serve

from apps.indexer import health, jetstream
from apps.indexer.jetstream import USER_AGENT, JetstreamClient, SilentStream
from tests.support.consumers import following, wait_until
from tests.support.stores import BOTH_STORES


@contextmanager
def serving(handler, process_request=None, tls=None):
    """A websocket server on loopback running `handler(connection)` for each connection; its URL."""
    server = serve(handler, "127.0.0.1", 0, process_request=process_request, max_size=None, compression="deflate",
                   ssl=tls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.socket.getsockname()[1]
        yield f"wss://localhost:{port}/subscribe" if tls else f"ws://127.0.0.1:{port}/subscribe"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def idle(connection):
    """Stay connected, as a live stream with nothing to send, until the client goes."""
    try:
        for _ in connection:
            pass
    except websockets.ConnectionClosed:
        pass


def messages(events, count):
    """The next `count` messages, quiet ticks skipped."""
    found = []
    while len(found) < count:
        item = next(events)
        if item is not None:
            found.append(item)
    return found


def test_a_message_sent_in_fragments_arrives_whole():
    big = [b"x" * 100_000, b"y" * 100_000, b"z" * 100_000]  # several reads' worth, deflated or not

    def handler(connection):
        connection.send(['{"kind":', '"commit"', "}"])  # a text message in three frames
        connection.send([b"\xff", b"\x00\x01"])  # a binary one in two
        connection.send(big)
        connection.send("after")
        idle(connection)

    with serving(handler) as url, closing(JetstreamClient(url).events()) as events:
        received = messages(events, 4)
    assert received == [b'{"kind":"commit"}', b"\xff\x00\x01", b"".join(big), b"after"]
    assert all(type(message) is bytes for message in received)


def test_pings_from_the_server_are_answered_and_the_connection_stays_up():
    answered = []

    def handler(connection):
        for number in range(3):
            answered.append(connection.ping(f"ping {number}").wait(timeout=10))
        connection.send("after the pings")
        idle(connection)

    with serving(handler) as url, closing(JetstreamClient(url).events()) as events:
        assert messages(events, 1) == [b"after the pings"]
    assert answered == [True, True, True]


def test_quiet_ticks_come_while_the_server_only_pings_and_silence_is_noticed():
    """Pings are not events: the ticks keep coming through them, and so does the silence."""
    stop = threading.Event()

    def handler(connection):
        try:
            while not stop.wait(0.02):
                connection.ping()
        except websockets.ConnectionClosed:
            pass

    with serving(handler) as url:
        client = JetstreamClient(url, receive_timeout=2.0)
        with closing(client.events(tick=0.2)) as events:
            ticks = 0
            with pytest.raises(SilentStream, match="no event for 2 s"):
                for item in events:
                    assert item is None
                    ticks += 1
        stop.set()
    assert ticks >= 2


@pytest.mark.parametrize("status", [HTTPStatus.FORBIDDEN, HTTPStatus.INTERNAL_SERVER_ERROR])
def test_a_refused_handshake_is_a_connection_error(status):
    def refuse(connection, request):
        return connection.respond(status, "no\n")

    with serving(idle, process_request=refuse) as url:
        with pytest.raises(websockets.InvalidStatus) as raised:
            next(JetstreamClient(url).events())
    assert raised.value.response.status_code == status
    assert isinstance(raised.value, websockets.WebSocketException)  # what the consumer catches


@pytest.mark.django_db(databases=BOTH_STORES, transaction=True)
def test_the_consumer_counts_a_refused_handshake_as_a_failed_attempt_and_retries():
    attempts = []

    def refuse(connection, request):
        attempts.append(request.path)
        return connection.respond(HTTPStatus.FORBIDDEN, "no\n")

    with serving(idle, process_request=refuse) as url, following(url=url):
        wait_until(lambda: health.snapshot()["failed_attempts"] >= 3)
        snapshot = health.snapshot()
    assert len(attempts) >= 3
    assert snapshot["connection_error"] == (
        "could not connect: InvalidStatus: server rejected WebSocket connection: HTTP 403")


@pytest.mark.parametrize("oversized", ["x" * 2000, ["x" * 600, "x" * 600]], ids=["whole", "fragments"])
def test_a_message_over_the_size_limit_fails_the_connection_after_the_ones_before(monkeypatch, oversized):
    monkeypatch.setattr(jetstream, "MAX_MESSAGE_BYTES", 1000)

    def handler(connection):
        connection.send("small")
        connection.send(oversized)
        idle(connection)

    with serving(handler) as url, closing(JetstreamClient(url).events()) as events:
        assert messages(events, 1) == [b"small"]
        with pytest.raises(websockets.ConnectionClosedError) as raised:
            messages(events, 1)
    assert raised.value.sent.code == 1009  # message too big


def test_a_clean_close_by_the_server_ends_the_events():
    headers = []

    def handler(connection):
        headers.append(connection.request.headers)
        connection.send("one")
        connection.send("two")
        connection.close()

    with serving(handler) as url:
        received = [item for item in JetstreamClient(url).events() if item is not None]
    assert received == [b"one", b"two"]
    assert headers[0]["User-Agent"] == USER_AGENT
    assert "permessage-deflate" in headers[0]["Sec-WebSocket-Extensions"]


def test_an_abrupt_end_of_the_connection_is_an_error():
    def handler(connection):
        connection.send("one")
        connection.socket.shutdown(socket.SHUT_RDWR)  # no close frame

    with serving(handler) as url, closing(JetstreamClient(url).events()) as events:
        assert messages(events, 1) == [b"one"]
        with pytest.raises(websockets.ConnectionClosedError):
            messages(events, 1)


def test_closing_the_events_closes_the_connection_cleanly():
    close_codes = []

    def handler(connection):
        connection.send("one")
        idle(connection)
        close_codes.append(connection.close_code)

    with serving(handler) as url:
        events = JetstreamClient(url).events()
        assert messages(events, 1) == [b"one"]
        events.close()
        wait_until(lambda: close_codes, timeout=30)
    assert close_codes == [1000]


def tls_certificate(directory):
    """A self-signed certificate for localhost: (the server's TLS context, the certificate's path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key_file)
    return tls, str(cert)


def trust(monkeypatch, cert):
    trusting = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda: trusting(cafile=cert))


def test_a_wss_url_is_read_over_tls_checked_against_the_trusted_certificates(tmp_path, monkeypatch):
    tls, cert = tls_certificate(tmp_path)

    def handler(connection):
        connection.send("over tls")
        idle(connection)

    with serving(handler, tls=tls) as url:
        with pytest.raises(ssl.SSLCertVerificationError):  # an OSError: a connection failure
            next(JetstreamClient(url).events())
        trust(monkeypatch, cert)
        with closing(JetstreamClient(url).events()) as events:
            assert messages(events, 1) == [b"over tls"]


def test_a_backlog_is_read_without_pausing_even_one_small_tls_record_at_a_time(tmp_path, monkeypatch):
    """The pause that lets a trickle gather must not throttle a backlog (a reconnect catching up)."""
    monkeypatch.setattr(jetstream, "GATHER_SECONDS", 3600)
    tls, cert = tls_certificate(tmp_path)
    trust(monkeypatch, cert)
    backlog = [f"event {number}".encode() for number in range(200)]
    sent = threading.Event()

    def handler(connection):
        connection.send("first")
        for message in backlog:  # one TLS record each
            connection.send(message.decode())
        sent.set()
        idle(connection)

    received = []
    with serving(handler, tls=tls) as url, closing(JetstreamClient(url).events()) as events:
        assert messages(events, 1) == [b"first"]
        assert sent.wait(timeout=30)
        reader = threading.Thread(target=lambda: received.extend(messages(events, len(backlog))), daemon=True)
        reader.start()
        reader.join(timeout=60)  # only bounds a pause of an hour
        assert received == backlog
