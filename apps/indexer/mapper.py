"""Parsing and row mapping in a process of its own, so the process that writes (and, under
`manage.py serve`, answers HTTP) spends its GIL on neither: a replay's (MapperProcess) and a live
Jetstream connection's (LiveMapperProcess, below).

The child, `python -m apps.indexer.mapper`, reads the recording itself, maps its events with
RowBatch and writes one pickled frame per batch to its stdout: the batch's counts, rejects and
newest time, and its rows, ready for the store (for chDB, each table's rows already encoded as the
body of one JSONCompactEachRow insert, so the parent touches no row at all). The parent
(MapperProcess) reads the frames in order; the child blocks on the pipe while the parent is
behind, which bounds the memory both hold.

A child that dies (killed, out of memory, a bug) ends its output before the closing frame: the
parent raises MapperFailed with its exit status rather than take the short output as the end of the
recording. The child ignores SIGINT (Ctrl-C reaches the whole process group): the parent decides
when it stops, and then ends the child with SIGTERM.

A live child (`python -m apps.indexer.mapper --live`) owns one websocket connection: it connects
with the cursor its parent gives it (on its stdin, with the rest of its settings, then stdin is
closed), reads, decompresses, parses and maps, and sends a frame per batch (every `batch_size`
events or `flush_seconds`), a "connected" frame once the handshake worked, a "tick" every quiet
second, and an "ended" frame saying why the connection ended (closed, silent, error, stopped). It
never reconnects: the parent starts a new child for the next connection (with its backoff), just
before the newest event it holds, as it would after any dropped connection. SIGTERM ends it
cleanly (its batch sent, then "ended"); it leaves by itself when its parent is gone.

This module imports no Django: the child starts in a few tens of milliseconds.
"""

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
_DONE = "done"
_BATCH = "batch"
_CONNECTED = "connected"
_TICK = "tick"
_ENDED = "ended"
# How long a stopped live child may take to send what it holds before it is killed (it could be
# waiting for a handshake, which takes up to the client's open timeout).
STOP_GRACE_SECONDS = 5.0
# A live frame goes as its length then its pickle, through a pipe made as big as Linux allows
# unprivileged: the parent (whose GIL the web threads share) reads a batch in a few reads, not one
# per 64 KiB.
_LENGTH = struct.Struct("<Q")
PIPE_BYTES = 1 << 20


class MapperFailed(Exception):
    """The mapping process ended before the end of the recording."""


class MappedBatch:
    """What the writer needs of a RowBatch, as it came from the child."""

    __slots__ = ("rows", "events", "max_time_us", "counts", "rejects", "examples")

    def __init__(self, rows, events, max_time_us, counts, rejects, examples):
        self.rows = rows
        self.events = events
        self.max_time_us = max_time_us
        self.counts = counts
        self.rejects = rejects
        self.examples = examples


def _spawn(arguments, stdin=None):
    """This module run as a child with `arguments`, its stdout a pipe."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "apps.indexer.mapper", *arguments], stdin=stdin,
                            stdout=subprocess.PIPE, env=env)


def _exit_status(process):
    code = process.wait()
    if code < 0:
        return f"killed by signal {-code} ({signal.Signals(-code).name})"
    return f"exit status {code}"


class MapperProcess:
    """The children mapping the recording at `path` ("-": this process's stdin), read as batches.

    With `processes` > 1 (a regular file only: each child reads the whole recording) child k of n
    maps batches k, k + n, k + 2n... and skips the lines of the others; the batches are read from
    the children in turn, so they arrive in the recording's order, exactly as one child makes them.
    """

    def __init__(self, path, *, batch_size, max_event_bytes, collections=(), encode=False, processes=1):
        self._processes = [
            _spawn([path, str(batch_size), str(max_event_bytes), "1" if encode else "0", str(part), str(processes),
                    *collections])
            for part in range(processes)
        ]
        self._process = self._processes[0]
        self._stopping = False

    @property
    def pid(self):
        return self._process.pid

    @property
    def pids(self):
        return [process.pid for process in self._processes]

    def batches(self):
        """Yield (MappedBatch, bytes of the recording read) until the children have mapped it all;
        raises MapperFailed when a child ends early (unless stop() asked them to)."""
        turn = 0
        while True:
            process = self._processes[turn % len(self._processes)]
            turn += 1
            kind, *frame = self._read(process)
            if kind is None:
                return
            if kind == _DONE:
                # The batches ran out: every other child has none left either, and says so.
                for other in self._processes:
                    if other is not process and self._read(other)[0] not in (_DONE, None):
                        raise MapperFailed("the mapping processes fell out of step")
                return
            rows, events, max_time_us, counts, rejects, examples, position = frame
            yield MappedBatch(rows, events, max_time_us, counts, rejects, examples), position

    def _read(self, process):
        """The next frame of `process`; (None,) once it stopped as asked; MapperFailed if it died."""
        try:
            return pickle.load(process.stdout)
        except (EOFError, pickle.UnpicklingError, ValueError, OSError):
            if self._stopping:
                return (None,)
            raise MapperFailed(f"the mapping process ended early ({_exit_status(process)})") from None

    def stop(self):
        """Ask the children to end now (thread-safe; batches() then returns)."""
        self._stopping = True
        for process in self._processes:
            if process.poll() is None:
                process.terminate()

    def close(self):
        self.stop()
        for process in self._processes:
            process.stdout.close()
            process.wait()


class LiveMapperProcess:
    """A child following one Jetstream connection from `cursor` (see the module's docstring).

    `settings`: url, collections, zstd_dictionary, receive_timeout, batch_size, flush_seconds,
    max_event_bytes, encode (as keywords; all picklable). Iterate frames() for what it sends.
    """

    def __init__(self, cursor, settings):
        self._process = _spawn(["--live"], stdin=subprocess.PIPE)
        _enlarge(self._process.stdout)
        self._stopping = False
        self._killer = None
        self.ended = None  # (cause, error) once the child said why the connection ended
        try:
            pickle.dump((cursor, settings), self._process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._process.stdin.close()
        except OSError:  # it died at once: frames() says how
            pass

    @property
    def pid(self):
        return self._process.pid

    def frames(self):
        """Yield "connected" once, then a MappedBatch per batch and None for each quiet tick, until
        the connection ends (`ended` then says why); raises MapperFailed when the child dies first."""
        while True:
            try:
                kind, *frame = self._read_frame()
            except (EOFError, pickle.UnpicklingError, ValueError, OSError):
                raise MapperFailed(f"the live mapping process ended early ({_exit_status(self._process)})") from None
            if kind == _BATCH:
                yield MappedBatch(*frame)
            elif kind == _TICK:
                yield None
            elif kind == _CONNECTED:
                yield _CONNECTED
            elif kind == _ENDED:
                self.ended = tuple(frame)
                return

    def _read_frame(self):
        output = self._process.stdout
        header = output.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            raise EOFError
        (length,) = _LENGTH.unpack(header)
        body = output.read(length)
        if len(body) < length:
            raise EOFError
        return pickle.loads(body)

    def stop(self):
        """Ask the child to send what it holds and end (thread-safe); killed if it takes too long."""
        if self._stopping:
            return
        self._stopping = True
        if self._process.poll() is None:
            self._process.terminate()
            self._killer = threading.Timer(STOP_GRACE_SECONDS, self._kill)
            self._killer.daemon = True
            self._killer.start()

    def _kill(self):
        if self._process.poll() is None:
            self._process.kill()

    def close(self):
        """Reap the child: one that said its connection ended is let exit, any other is killed."""
        if self.ended is not None:
            try:
                self._process.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        self._process.stdout.close()
        self._process.wait()
        if self._killer is not None:
            self._killer.cancel()


def _enlarge(pipe):
    """Make `pipe` PIPE_BYTES big where the system lets it (Linux), else leave it."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def _encoded(rows, encode):
    """The non-empty tables of `rows`, each encoded for the store when `encode`."""
    rows = {table: table_rows for table, table_rows in rows.items() if table_rows}
    if encode:
        from apps.indexer.rows import EncodedRows

        for table, table_rows in rows.items():
            try:
                rows[table] = EncodedRows.of(table_rows)
            except TypeError:  # a value JSON cannot carry: sent as rows, for the writer to find and refuse
                pass
    return rows


def _frame(batch, encode):
    return (_BATCH, _encoded(batch.rows, encode), batch.events, batch.max_time_us, batch.counts, batch.rejects,
            batch.examples)


def _send(output, batch, position, encode):
    pickle.dump((*_frame(batch, encode), position), output, protocol=pickle.HIGHEST_PROTOCOL)


def main(path, batch_size, max_event_bytes, encode, part, parts, *collections):
    from apps.indexer.replay import open_replay
    from apps.indexer.rows import RowBatch, collection_matcher

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    batch_size, max_event_bytes, encode = int(batch_size), int(max_event_bytes), encode == "1"
    part, parts = int(part), int(parts)
    wanted = collection_matcher(collections) if collections else None
    output = sys.stdout.buffer
    with open_replay(path) as replay:
        number, count = 0, 0  # the batch being read, and its events so far
        batch = RowBatch(max_event_bytes, wanted) if part == 0 else None
        for line in replay.lines:
            if line.isspace():
                continue
            count += 1
            if batch is not None:
                batch.add(line)
            if count == batch_size:
                if batch is not None:
                    _send(output, batch, replay.position(), encode)
                number, count = number + 1, 0
                batch = RowBatch(max_event_bytes, wanted) if number % parts == part else None
        if batch is not None and batch.events:
            _send(output, batch, replay.position(), encode)
    pickle.dump((_DONE,), output, protocol=pickle.HIGHEST_PROTOCOL)
    output.flush()


class _Stopped(Exception):
    """SIGTERM before the connection was up: nothing is held, so the child ends at once."""


class _LiveChild:
    """The live child's side: one connection, mapped into batches sent down stdout."""

    def __init__(self, cursor, url, collections, zstd_dictionary, receive_timeout, batch_size, flush_seconds,
                 max_event_bytes, encode):
        from apps.indexer.jetstream import JetstreamClient
        from apps.indexer.rows import collection_matcher

        self.cursor = cursor
        self.client = JetstreamClient(url, collections, zstd_dictionary=zstd_dictionary,
                                      receive_timeout=receive_timeout)
        self.batch_size, self.flush_seconds, self.encode = batch_size, flush_seconds, encode
        self.max_event_bytes = max_event_bytes
        self.wanted = collection_matcher(collections) if collections else None
        self.output = sys.stdout.buffer
        self.parent = os.getppid()
        self.stopping = False
        self.connected = False
        self.batch = None

    def _on_sigterm(self, signum, frame):
        self.stopping = True
        if not self.connected:
            raise _Stopped

    def _put(self, frame):
        body = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        self.output.write(_LENGTH.pack(len(body)))
        self.output.write(body)
        self.output.flush()

    def run(self):
        signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            ended = self._follow()
        except _Stopped:
            ended = ("stopped", None)
        if self.batch is not None and self.batch.events:  # what arrived before the connection ended
            self._put(_frame(self.batch, self.encode))
        self._put((_ENDED, *ended))

    def _follow(self):
        """Index the connection's events until it ends; (cause, error) of its end."""
        import websockets

        from apps.indexer.jetstream import SilentStream

        try:
            self._receive()
        except SilentStream as exc:
            return "silent", f"the stream went silent ({exc})"
        except (OSError, websockets.WebSocketException) as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            verb = "connection lost" if self.connected else "could not connect"
            return "error", f"{verb}: {type(exc).__name__}: {exc}"
        if self.stopping:
            return "stopped", None
        return "closed", "Jetstream closed the connection"

    def _receive(self):
        from contextlib import closing

        from apps.indexer.rows import RowBatch

        self.batch = batch = RowBatch(self.max_event_bytes, self.wanted)
        deadline = time.monotonic() + self.flush_seconds
        with closing(self.client.events(self.cursor, tick=min(self.flush_seconds, 1.0))) as events:
            for raw in events:
                if not self.connected:  # the first item (an event or a quiet tick): the handshake worked
                    self.connected = True
                    self._put((_CONNECTED,))
                if raw is None:
                    self._put((_TICK,))
                elif type(raw) is bytes:
                    batch.add(raw)
                else:
                    batch.add_undecodable(raw.raw, raw.detail)
                now = time.monotonic()
                if batch.events >= self.batch_size or now >= deadline:
                    if batch.events:
                        self._put(_frame(batch, self.encode))
                        self.batch = batch = RowBatch(self.max_event_bytes, self.wanted)
                    deadline = now + self.flush_seconds
                    if os.getppid() != self.parent:  # the parent is gone: nobody reads what this maps
                        os._exit(1)
                if self.stopping:
                    break


def live_main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cursor, settings = pickle.load(sys.stdin.buffer)
    _LiveChild(cursor, **settings).run()


if __name__ == "__main__":
    try:
        if sys.argv[1:] == ["--live"]:
            live_main()
        else:
            main(*sys.argv[1:])
    except BrokenPipeError:  # the parent stopped reading: it is stopping
        os._exit(1)
