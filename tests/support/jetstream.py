"""A Jetstream v1 `/subscribe` server on loopback for the tests.

It serves a list of events (raw JSON lines, so malformed ones go out as they are), honours
`cursor` (events with time_us >= cursor, in the list's order) and `wantedCollections` (exact NSIDs
or `prefix.*`; identity and account events always pass), speaks permessage-deflate or, with
`compress=true`, per-message zstd frames with a dictionary (and refuses both at once with a 400,
as v2 servers do). It can drop the connection every N events, go silent once after N events (noting
the newest time_us sent by then), hold the rest of the stream back until released, and pace its
sending. After the last event a connection stays open and idle, as a live stream would.
"""

import socket
import threading
import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import orjson
import websockets
import zstandard
from websockets.sync.server import serve


class JetstreamServer:
    def __init__(self, lines, drop_every=None, silent_after=None, pace=None, zstd_dictionary=None, hold_after=None):
        """`lines`: bytes (one event each); `pace`: events per second; `zstd_dictionary`: bytes;
        `hold_after`: send no more than this many events until `release()`."""
        self.lines = [line.rstrip(b"\n") for line in lines]
        self.drop_every = drop_every
        self.silent_after = silent_after
        self.pace = pace
        self.zstd_dictionary = zstd_dictionary
        self.hold_after = hold_after
        self._released = threading.Event()
        self.requests = []  # one dict per accepted connection: its query parameters and headers
        self.sent = 0
        self.newest_before_silence = None  # the greatest time_us sent before the stream went silent
        self._newest_sent = None
        self._went_silent = False
        self._lock = threading.Lock()
        self._metadata = [self._describe(line) for line in self.lines]

    @staticmethod
    def _describe(line):
        """(time_us, collection or None) of an event; (None, None) when it does not parse."""
        try:
            event = orjson.loads(line)
            commit = event.get("commit") if event.get("kind") == "commit" else None
            return event.get("time_us"), commit.get("collection") if isinstance(commit, dict) else None
        except (orjson.JSONDecodeError, AttributeError):
            return None, None

    def __enter__(self):
        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._check_request,
                             max_size=None, compression="deflate")
        port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/subscribe"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.release()
        self._server.shutdown()
        self._thread.join(timeout=5)

    def release(self):
        """Send the events held back by `hold_after`."""
        self._released.set()

    def _check_request(self, connection, request):
        query = parse_qs(urlsplit(request.path).query)
        extensions = request.headers.get("Sec-WebSocket-Extensions", "")
        if query.get("compress") == ["true"] and "permessage-deflate" in extensions:
            return connection.respond(HTTPStatus.BAD_REQUEST, "choose one compression scheme\n")
        return None

    def _selected(self, cursor, wanted):
        exact = {pattern for pattern in wanted if not pattern.endswith(".*")}
        prefixes = tuple(pattern[:-1] for pattern in wanted if pattern.endswith(".*"))
        for line, (time_us, collection) in zip(self.lines, self._metadata):
            if cursor is not None and isinstance(time_us, int) and time_us < cursor:
                continue
            if wanted and collection is not None and not (collection in exact or collection.startswith(prefixes)):
                continue
            yield line, time_us

    def _handle(self, connection):
        query = parse_qs(urlsplit(connection.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        wanted = query.get("wantedCollections", [])
        compressor = None
        if query.get("compress") == ["true"]:
            compressor = zstandard.ZstdCompressor(dict_data=zstandard.ZstdCompressionDict(self.zstd_dictionary))
        request = {
            "cursor": cursor,
            "wantedCollections": wanted,
            "compress": compressor is not None,
            "extensions": connection.request.headers.get("Sec-WebSocket-Extensions", ""),
            "went_silent": False,
        }
        self.requests.append(request)
        sent_here = 0
        try:
            for line, time_us in self._selected(cursor, wanted):
                if self.drop_every and sent_here == self.drop_every:
                    connection.socket.shutdown(socket.SHUT_RDWR)  # abrupt: no close frame
                    return
                if self.hold_after is not None and self.sent >= self.hold_after:
                    self._released.wait()
                if self.silent_after is not None and self.sent == self.silent_after and not self._went_silent:
                    self._went_silent = True
                    self.newest_before_silence = self._newest_sent
                    request["went_silent"] = True
                    break
                connection.send(compressor.compress(line) if compressor else _frame(line))
                sent_here += 1
                with self._lock:
                    self.sent += 1
                    if isinstance(time_us, int) and (self._newest_sent is None or time_us > self._newest_sent):
                        self._newest_sent = time_us
                if self.pace:
                    time.sleep(1 / self.pace)
            for _ in connection:  # idle, like a live stream, until the client goes
                pass
        except (websockets.ConnectionClosed, OSError):
            return


def _frame(line):
    """A text frame, as Jetstream sends; bytes that are not UTF-8 can only go as a binary one."""
    try:
        return line.decode()
    except UnicodeDecodeError:
        return line
