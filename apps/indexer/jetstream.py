"""A Jetstream v1 `/subscribe` client: one websocket connection yielding raw JSON events.

Reconnecting is the consumer's job; this module only knows the wire: the query parameters,
the two compression modes (permessage-deflate by default, or Jetstream's own per-message zstd
with a dictionary, which must not be combined with deflate) and the receive timeout that notices
a stream gone silent (Jetstream hosts have been seen to stop sending without closing).
"""

import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websockets
import zstandard
from websockets.sync.client import connect

USER_AGENT = "skyline-indexer (+https://github.com/bluesky-social/jetstream)"
# The websocket layer's own limit is generous: an oversized event must reach the consumer to be
# counted and dead-lettered, since refusing it here would close the connection and reconnecting
# from the cursor would meet the same event again.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


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
        """
        with connect(
            self.subscribe_url(cursor),
            compression=None if self._decompressor is not None else "deflate",
            open_timeout=self.open_timeout,
            max_size=MAX_MESSAGE_BYTES,
            user_agent_header=USER_AGENT,
            close_timeout=2,
        ) as websocket:
            last_message = time.monotonic()
            while True:
                wait = min(tick, max(0.0, last_message + self.receive_timeout - time.monotonic()))
                try:
                    message = websocket.recv(timeout=wait, decode=False)
                except TimeoutError:
                    if time.monotonic() - last_message >= self.receive_timeout:
                        raise SilentStream(f"no event for {self.receive_timeout:g} s") from None
                    yield None
                    continue
                except websockets.ConnectionClosedOK:
                    return
                last_message = time.monotonic()
                yield self._decoded(message)

    def _decoded(self, message):
        if self._decompressor is None:
            return message
        try:
            return self._decompressor.decompressobj().decompress(message)
        except zstandard.ZstdError as exc:
            return UndecodableMessage(message, f"not a zstd frame of the dictionary: {exc}")
