"""The firehose consumer: read events (from Jetstream or a recording), batch their rows, hand the
batches to the writer, which writes them and then saves the cursor.

`Consumer.run()` returns when a replay is done or after `stop()` (thread-safe, so another command
can run the consumer in a thread); installing signal handlers is left to the caller.

By default a child process (apps.indexer.mapper) does the reading, parsing and mapping, a replay's
or each live connection's, so that under `manage.py serve` the web threads do not share the GIL
with it: this process only writes the batches it sends, saves the cursor after them, and reports.
"""

import hashlib
import logging
import os
import threading
import time
from contextlib import closing

from django.conf import settings

from apps.indexer import health, metrics
from apps.indexer.cursor import cursor_store
from apps.indexer.mapper import LiveMapperProcess, MapperFailed, MapperProcess
from apps.indexer.replay import open_replay, replay_size
from apps.indexer.rows import RowBatch, collection_matcher
from apps.indexer.writer import Writer
from skyline.backoff import Backoff

logger = logging.getLogger(__name__)

# How often the consumer's state is published while nothing changes (the dashboard calls a
# consumer silent for a minute "stale").
REPORT_SECONDS = 5.0
# A replay's batches when none is given: every insert costs the store a fixed 15-75 ms per table
# (its views and index included), so a recording, which has no latency to keep, goes in bigger ones.
REPLAY_BATCH_SIZE = 50_000


def replay_mappers(path):
    """How many processes map a replay: one per core, up to two (mapping is a replay's largest
    cost, and the writer needs a core's share too), when the recording is a regular file each can
    read; one for stdin or a pipe."""
    if replay_size(path) is None:
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def stream_name(collections):
    """The name a consumer's cursor is saved under: one per stream, so consumers split with
    --collections each resume from their own position."""
    if not collections:
        return "jetstream"
    name = "jetstream:" + ",".join(sorted(set(collections)))
    if len(name) > 64:
        name = "jetstream:" + hashlib.sha256(name.encode()).hexdigest()[:32]
    return name


def _store_takes_encoded_rows():
    """Whether the ClickHouse store is chDB, whose driver inserts EncodedRows as they are."""
    return settings.DATABASES["clickhouse"]["ENGINE"] == "skyline.db.chdb"


class Consumer:
    def __init__(
        self,
        *,
        url=None,
        collections=(),
        cursor=None,
        replay=None,
        zstd_dictionary=None,
        batch_size=None,
        flush_seconds=None,
        rewind_seconds=None,
        receive_timeout=None,
        max_event_bytes=None,
        progress=None,
        cursor_name=None,
        backoff=None,
        map_in_child=True,
    ):
        """Follow Jetstream at `url` (default JETSTREAM_URL), or read the recording at `replay`.

        `cursor` (time_us) overrides where following starts; otherwise it resumes from the saved
        cursor, `rewind_seconds` earlier. `zstd_dictionary` (bytes) asks for zstd frames. A replay
        saves no cursor: a recording says nothing about where the live stream is. `progress` is a
        tqdm-like class to show a replay's progress with. `backoff` paces reconnections.
        `map_in_child`: a replay, or each live connection, is read, parsed and mapped by a child
        process (apps.indexer.mapper); False does it all in this process.
        """
        self.url = url or settings.JETSTREAM_URL
        self.collections = list(collections)
        self.start_cursor = cursor
        self.replay = replay
        self.zstd_dictionary = zstd_dictionary
        self.batch_size = batch_size or (REPLAY_BATCH_SIZE if replay else settings.JETSTREAM_BATCH_SIZE)
        self.flush_seconds = flush_seconds or settings.JETSTREAM_FLUSH_SECONDS
        rewind = settings.JETSTREAM_REWIND_SECONDS if rewind_seconds is None else rewind_seconds
        self.rewind_us = int(rewind * 1_000_000)
        self.receive_timeout = receive_timeout or settings.JETSTREAM_RECEIVE_TIMEOUT
        self.max_event_bytes = max_event_bytes or settings.JETSTREAM_MAX_EVENT_BYTES
        self.progress = progress
        self.cursor = None if replay else cursor_store(cursor_name or stream_name(self.collections))
        self.backoff = backoff or Backoff()
        self.writer = None
        self._wanted = collection_matcher(self.collections) if self.collections else None
        self._stopping = threading.Event()
        self._batch = self._new_batch()
        self._deadline = time.monotonic() + self.flush_seconds
        self._newest = None
        self._events_read = 0
        self._connection = {"state": None, "url": None, "last_error": None, "last_error_at": None, "reconnects": 0,
                            "failed_attempts": 0, "last_event_at": None, "replay": None}
        self._next_report = 0.0
        self._saved_cursor = None
        self.map_in_child = map_in_child
        self.mapper = None
        self.live_mapper = None  # the child following the current connection (map_in_child)
        self._live_lock = threading.Lock()

    def stop(self):
        """Stop reading; run() then writes what it has, saves the cursor and returns (or, if the
        store stays down through a few more attempts, raises WriteFailed with the cursor kept)."""
        self._stopping.set()
        if self.writer is not None:
            self.writer.stop_retrying()
        if self.mapper is not None:
            self.mapper.stop()
        with self._live_lock:
            if self.live_mapper is not None:
                self.live_mapper.stop()

    def run(self):
        self._saved_cursor = self.cursor.load() if self.cursor is not None else None
        self.writer = Writer(self.cursor).start()
        try:
            if self.replay and self.map_in_child:
                self._replay_in_child()
            elif self.replay:
                self._replay()
            elif self.map_in_child:
                self._follow(self._receive_in_child)
            else:
                self._follow(self._receive)
        finally:
            try:
                self._flush()
            finally:
                try:
                    self.writer.close()
                finally:
                    self._report(state=health.STOPPED)

    def _report(self, **changes):
        """Publish the connection's state (health and metrics): now, after a change."""
        self._connection.update(changes)
        state = self._connection["state"]
        for name in (health.CONNECTING, health.CONNECTED, health.DISCONNECTED, health.REPLAYING, health.STOPPED):
            metrics.STATE.labels(name).set(1 if name == state else 0)
        newest = (self.writer.written_time_us if self.writer is not None else None) or self._saved_cursor
        metrics.LAG.set(max(0.0, time.time() - newest / 1_000_000) if newest else float("nan"))
        self._next_report = time.monotonic() + REPORT_SECONDS
        health.publish_connection(self._connection)

    def _heartbeat(self, now, seen):
        """Publish every REPORT_SECONDS while nothing changes; `seen`: events arrived since the last."""
        if now < self._next_report:
            return seen
        if seen:
            self._connection["last_event_at"] = time.time()
            metrics.LAST_EVENT.set(self._connection["last_event_at"])
        if self._connection["replay"] is not None:
            self._connection["replay"] = {**self._connection["replay"], "events": self._events_read}
        self._report()
        return False

    def _new_batch(self):
        return RowBatch(self.max_event_bytes, self._wanted)

    def _flush(self):
        self._deadline = time.monotonic() + self.flush_seconds
        batch = self._batch
        if not batch.events:
            return
        if batch.max_time_us is not None and (self._newest is None or batch.max_time_us > self._newest):
            self._newest = batch.max_time_us
        self._batch = self._new_batch()
        self._events_read += batch.events
        self.writer.submit(batch)

    def _replay(self):
        stopping = self._stopping.is_set
        size = self.batch_size
        with open_replay(self.replay) as replay:
            progress = {"path": str(self.replay), "bytes_total": replay.size, "bytes_read": 0, "events": 0,
                        "done": False}
            self._report(state=health.REPLAYING, replay=progress)
            bar = self.progress(total=replay.size, unit="B", unit_scale=True) if self.progress else None
            batch = self._batch
            for line in replay.lines:
                if line.isspace():
                    continue
                batch.add(line)
                if batch.events >= size:
                    self._flush()
                    batch = self._batch
                    if bar is not None and replay.size:
                        bar.update(replay.position() - bar.n)
                    self._connection["replay"]["bytes_read"] = replay.position()
                    self._heartbeat(time.monotonic(), True)
                if stopping():
                    break
            else:
                self._connection["replay"].update(done=True, bytes_read=replay.size)
            if bar is not None:
                if replay.size:
                    bar.update(replay.size - bar.n)
                bar.close()
        self._connection["replay"]["events"] = self._events_read + self._batch.events
        if self._connection["replay"]["events"]:
            self._connection["last_event_at"] = time.time()

    def start_mapping(self):
        """Start a replay's mapping process now (run() otherwise does), so that it reads and maps
        while this process is still starting up; close_mapping() ends it should run() never come."""
        if self.replay and self.map_in_child and self.mapper is None:
            self.mapper = MapperProcess(self.replay, batch_size=self.batch_size, max_event_bytes=self.max_event_bytes,
                                        collections=self.collections, encode=_store_takes_encoded_rows(),
                                        processes=replay_mappers(self.replay))
        return self

    def close_mapping(self):
        if self.mapper is not None:
            self.mapper.close()

    def _replay_in_child(self):
        """As _replay, with the parsing and mapping done by a child process (MapperProcess)."""
        size = replay_size(self.replay)
        progress = {"path": str(self.replay), "bytes_total": size, "bytes_read": 0, "events": 0, "done": False}
        self._report(state=health.REPLAYING, replay=progress)
        bar = self.progress(total=size, unit="B", unit_scale=True) if self.progress else None
        self.start_mapping()
        try:
            if self._stopping.is_set():  # stop() came before the child existed
                self.mapper.stop()
            for batch, position in self.mapper.batches():
                self._submit(batch)
                if bar is not None and size:
                    bar.update(position - bar.n)
                self._connection["replay"]["bytes_read"] = position  # (_heartbeat replaces the dict)
                self._heartbeat(time.monotonic(), True)
                if self._stopping.is_set():
                    break
            else:
                if not self._stopping.is_set():
                    self._connection["replay"].update(done=True, bytes_read=size)
        finally:
            self.close_mapping()
            if bar is not None:
                bar.close()
        self._connection["replay"]["events"] = self._events_read
        if self._events_read:
            self._connection["last_event_at"] = time.time()

    def _submit(self, batch):
        """Hand a mapped batch to the writer, as _flush does."""
        if batch.max_time_us is not None and (self._newest is None or batch.max_time_us > self._newest):
            self._newest = batch.max_time_us
        self._events_read += batch.events
        self.writer.submit(batch)

    def _resume_cursor(self):
        """Where to (re)connect: just before the newest event seen, else the given or saved cursor."""
        newest = self._newest
        if self._batch.max_time_us is not None and (newest is None or self._batch.max_time_us > newest):
            newest = self._batch.max_time_us
        if newest is not None:
            return max(0, newest - self.rewind_us)
        if self.start_cursor is not None:
            return self.start_cursor
        saved = self.cursor.load()
        return None if saved is None else max(0, saved - self.rewind_us)

    def _follow(self, receive):
        """Connect, index with `receive(client, cursor)` until the connection ends, reconnect."""
        from apps.indexer.jetstream import JetstreamClient  # websockets: loaded to follow, not to replay

        client = JetstreamClient(
            self.url, self.collections, zstd_dictionary=self.zstd_dictionary, receive_timeout=self.receive_timeout
        )
        backoff = self.backoff
        while not self._stopping.is_set():
            cursor = self._resume_cursor()
            url = client.subscribe_url(cursor)
            logger.info("firehose: connecting to %s", url)
            self._report(state=health.CONNECTING, url=url)
            received = receive(client, cursor)
            if self._stopping.is_set():
                break
            if received:
                backoff.reset()
            self._flush()
            delay = backoff.next_delay()
            logger.info("firehose: reconnecting in %.1f s", delay)
            self._stopping.wait(delay)

    def _receive(self, client, cursor):
        """Index one connection's events until it ends; whether any arrived."""
        import websockets

        from apps.indexer.jetstream import SilentStream

        received = seen = connected = False
        size = self.batch_size
        stopping = self._stopping.is_set
        try:
            with closing(client.events(cursor, tick=min(self.flush_seconds, 1.0))) as events:
                for raw in events:
                    if not connected:  # the first item (an event or a quiet tick) means the handshake worked
                        connected = True
                        self._report(state=health.CONNECTED, failed_attempts=0)
                    if raw is not None:
                        received = seen = True
                        if type(raw) is bytes:
                            self._batch.add(raw)
                        else:
                            self._batch.add_undecodable(raw.raw, raw.detail)
                    now = time.monotonic()
                    if self._batch.events >= size or now >= self._deadline:
                        self._flush()
                        seen = self._heartbeat(now, seen)
                    elif raw is None:
                        seen = self._heartbeat(now, seen)
                    if stopping():
                        return received
            cause, error = "closed", "Jetstream closed the connection"
            logger.warning("firehose: Jetstream closed the connection")
        except SilentStream as exc:
            cause, error = "silent", f"the stream went silent ({exc})"
            logger.warning("firehose: %s; reconnecting", exc)
        except (OSError, websockets.WebSocketException) as exc:
            cause = "error"
            error = f"{'connection lost' if connected else 'could not connect'}: {type(exc).__name__}: {exc}"
            logger.warning("firehose: connection failed: %r", exc)
        self._disconnected(cause, error, connected)
        return received

    def _disconnected(self, cause, error, connected):
        metrics.RECONNECTS.labels(cause).inc()
        connection = self._connection
        self._report(state=health.DISCONNECTED, last_error=error, last_error_at=time.time(),
                     reconnects=connection["reconnects"] + 1,
                     failed_attempts=connection["failed_attempts"] + (0 if connected else 1))

    def _live_settings(self):
        return {"url": self.url, "collections": self.collections, "zstd_dictionary": self.zstd_dictionary,
                "receive_timeout": self.receive_timeout, "batch_size": self.batch_size,
                "flush_seconds": self.flush_seconds, "max_event_bytes": self.max_event_bytes,
                "encode": _store_takes_encoded_rows()}

    def _start_live_mapper(self, cursor):
        """A child for this connection, unless stop() came first (then None)."""
        with self._live_lock:
            if self._stopping.is_set():
                return None
            self.live_mapper = LiveMapperProcess(cursor, self._live_settings())
            return self.live_mapper

    def _receive_in_child(self, client, cursor):
        """As _receive, with the connection read, parsed and mapped by a child (LiveMapperProcess):
        this process only hands its batches to the writer. A child that dies is logged as an error
        and counted as a failed connection; the next child starts from the newest event this
        process holds (every batch it has is on its way to the store)."""
        child = self._start_live_mapper(cursor)
        if child is None:
            return False
        received = seen = connected = False
        try:
            for frame in child.frames():
                if frame is None:
                    seen = self._heartbeat(time.monotonic(), seen)
                elif type(frame) is str:  # "connected": the handshake worked
                    connected = True
                    self._report(state=health.CONNECTED, failed_attempts=0)
                else:
                    received = seen = True
                    self._submit(frame)
                    seen = self._heartbeat(time.monotonic(), seen)
            cause, error = child.ended
        except MapperFailed as exc:
            cause, error = "crashed", str(exc)
        finally:
            with self._live_lock:
                self.live_mapper = None
            child.close()
        if cause == "stopped" or self._stopping.is_set():
            return received
        if cause == "crashed":  # a bug or the system (out of memory): never a silent stall
            logger.error("firehose: %s; reconnecting", error)
            cause = "error"
        else:
            logger.warning("firehose: %s; reconnecting", error)
        self._disconnected(cause, error, connected)
        return received
