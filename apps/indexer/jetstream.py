"""A Jetstream v1 `/subscribe` client: one websocket connection yielding raw JSON events.

Reconnecting is the consumer's job; this module only knows the wire: the query parameters,
the two compression modes (permessage-deflate by default, or Jetstream's own per-message zstd
with a dictionary, which must not be combined with deflate) and the receive timeout that notices
a stream gone silent (Jetstream hosts have been seen to stop sending without closing).
"""

import select
import socket
import ssl
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websockets
import zstandard
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import CloseCode, Opcode
from websockets.protocol import CLOSED, CONNECTING, OPEN
from websockets.uri import parse_uri

USER_AGENT = "skyline-indexer (+https://github.com/bluesky-social/jetstream)"
# The websocket layer's own limit is generous: an oversized event must reach the consumer to be
# counted and dead-lettered, since refusing it here would close the connection and reconnecting
# from the cursor would meet the same event again.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
RECEIVE_BYTES = 65536  # one socket read
GATHER_SECONDS = 0.02  # the pause when a read has taken all there was
CLOSE_TIMEOUT = 2.0  # how long closing waits for the server to hang up


class SilentStream(Exception):
    """Nothing arrived within the receive timeout."""


class UndecodableMessage:
    """A binary frame that is not a zstd frame of the expected dictionary (yielded, to be rejected)."""

    def __init__(self, raw, detail):
        self.raw = raw
        self.detail = detail


class JetstreamClient:
    def __init__(self, url, collections=(), zstd_dictionary=None, receive_timeout=30.0, open_timeout=10.0):
        """`zstd_dictionary` (bytes) turns on `compress=true`; otherwise permessage-deflate is offered."""
        self.url = url
        self.collections = list(collections)
        self.receive_timeout = receive_timeout
        self.open_timeout = open_timeout
        self._decompressor = None
        if zstd_dictionary is not None:
            dictionary = zstandard.ZstdCompressionDict(zstd_dictionary)
            self._decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)

    def subscribe_url(self, cursor=None):
        """The /subscribe URL with wantedCollections, cursor and compress (other query kept as given)."""
        parts = urlsplit(self.url)
        query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True)
                 if name not in ("wantedCollections", "cursor", "compress")]
        query += [("wantedCollections", collection) for collection in self.collections]
        if cursor is not None:
            query.append(("cursor", str(cursor)))
        if self._decompressor is not None:
            query.append(("compress", "true"))
        return urlunsplit(parts._replace(query=urlencode(query)))

    def events(self, cursor=None, tick=1.0):
        """Yield each event's raw JSON bytes from one connection (an UndecodableMessage for a frame
        that does not decompress), and None every `tick` seconds of quiet.

        Ends when the server closes the connection; raises SilentStream after `receive_timeout`
        seconds without a message, and websockets'/OS errors as they come.

        The connection is read in the calling thread through websockets' Sans-I/O protocol: the
        threaded client's reader thread and hand-over cost several times the mapping itself.
        """
        sock, protocol, frames = self._open(self.subscribe_url(cursor))
        try:
            yield from self._messages(sock, protocol, frames, tick)
        finally:
            _close(sock, protocol)

    def _open(self, url):
        """A socket and an open protocol after the handshake, with the frames that came with it."""
        uri = parse_uri(url)
        deadline = time.monotonic() + self.open_timeout
        sock = socket.create_connection((uri.host, uri.port), timeout=self.open_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            if uri.secure:
                sock.settimeout(_remaining(deadline))
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=uri.host)
            extensions = None if self._decompressor is not None else [
                ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5})]
            protocol = ClientProtocol(uri, extensions=extensions, max_size=MAX_MESSAGE_BYTES)
            request = protocol.connect()
            request.headers["User-Agent"] = USER_AGENT
            protocol.send_request(request)
            events = []
            try:
                sock.settimeout(_remaining(deadline))
                _send(sock, protocol)
                while protocol.state is CONNECTING and protocol.handshake_exc is None:
                    sock.settimeout(_remaining(deadline))
                    _read(sock, protocol)
                    events += protocol.events_received()
                    _send(sock, protocol)  # a pong for a ping that came with the response
            except TimeoutError:
                raise TimeoutError("timed out while waiting for handshake response") from None
            except OSError as exc:  # reset: no valid answer (or, once open, a connection lost)
                protocol.receive_eof()
                raise (protocol.handshake_exc or protocol.close_exc) from exc
            if protocol.handshake_exc is not None:
                raise protocol.handshake_exc
        except BaseException:
            sock.close()
            raise
        return sock, protocol, events[1:]  # the first event is the handshake response

    def _messages(self, sock, protocol, frames, tick):
        fragments = None  # the frames so far of a message in progress
        last_message = time.monotonic()
        next_tick = last_message + tick
        receive_timeout = self.receive_timeout
        data = b""
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while True:
            for frame in frames:
                opcode = frame.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    if not frame.fin:
                        fragments = [frame.data]
                        continue
                    message = frame.data
                elif opcode is Opcode.CONT:
                    fragments.append(frame.data)
                    if not frame.fin:
                        continue
                    message, fragments = b"".join(fragments), None
                else:  # pings are answered by the protocol, closes end the loop below
                    continue
                last_message = time.monotonic()
                yield self._decoded(message if type(message) is bytes else bytes(message))
                next_tick = time.monotonic() + tick
            if protocol.state is CLOSED:
                exc = protocol.close_exc
                if isinstance(exc, websockets.ConnectionClosedOK):
                    return
                raise exc
            if data and not _waiting(sock, poller):
                # A live stream trickles in an event at a time: waking up for each costs far more
                # than handling it, so let a few gather (the consumer batches for seconds anyway).
                time.sleep(GATHER_SECONDS)
            now = time.monotonic()
            if now - last_message >= receive_timeout:
                raise SilentStream(f"no event for {receive_timeout:g} s")
            if now >= next_tick:
                data, frames = b"", ()
                yield None
                next_tick = time.monotonic() + tick
                continue
            try:
                sock.settimeout(min(next_tick, last_message + receive_timeout) - now)
                data = _read(sock, protocol)
            except TimeoutError:
                data, frames = b"", ()
                continue
            except OSError as exc:  # reset: a connection lost, as the threaded client said
                protocol.receive_eof()
                raise protocol.close_exc from exc
            frames = protocol.events_received()
            try:
                _send(sock, protocol)  # pongs, the echo of a close
            except OSError as exc:
                protocol.receive_eof()
                raise protocol.close_exc from exc
            if protocol.close_expected():  # a close frame came, or the protocol failed the connection
                _await_eof(sock, protocol)

    def _decoded(self, message):
        if self._decompressor is None:
            return message
        try:
            return self._decompressor.decompressobj().decompress(message)
        except zstandard.ZstdError as exc:
            return UndecodableMessage(message, f"not a zstd frame of the dictionary: {exc}")


def _remaining(deadline):
    """Seconds left before `deadline` (a socket timeout), or TimeoutError."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def _read(sock, protocol):
    """One read of the socket fed to the protocol (an empty read is the server's end of the
    stream); the bytes read."""
    data = sock.recv(RECEIVE_BYTES)
    if data:
        protocol.receive_data(data)
    else:
        protocol.receive_eof()
    return data


def _waiting(sock, poller):
    """Whether more can be read at once: decrypted already, or in the kernel's buffer."""
    return (isinstance(sock, ssl.SSLSocket) and sock.pending() > 0) or bool(poller.poll(0))


def _send(sock, protocol):
    """Write what the protocol has to say; an empty chunk means half-close."""
    for data in protocol.data_to_send():
        if data:
            sock.sendall(data)
        else:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def _await_eof(sock, protocol):
    """Let the server end the TCP connection after the closing handshake, for at most CLOSE_TIMEOUT
    seconds; after that (or an error) the connection counts as closed without it."""
    deadline = time.monotonic() + CLOSE_TIMEOUT
    try:
        while protocol.state is not CLOSED:
            sock.settimeout(_remaining(deadline))
            _read(sock, protocol)
            _send(sock, protocol)
    except OSError:
        protocol.receive_eof()


def _close(sock, protocol):
    """Close the connection as a client should (a close frame, then the server hangs up), briefly."""
    try:
        if protocol.state is OPEN:
            protocol.send_close(CloseCode.NORMAL_CLOSURE)
            sock.settimeout(CLOSE_TIMEOUT)
            _send(sock, protocol)
            _await_eof(sock, protocol)
    except OSError:
        pass
    finally:
        sock.close()
