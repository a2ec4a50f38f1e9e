"""Parsing and row mapping of a replay in a process of its own, so the process that writes (and,
under `manage.py serve`, answers HTTP) spends its GIL on neither.

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

This module imports no Django: the child starts in a few tens of milliseconds.
"""

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
_DONE = "done"
_BATCH = "batch"


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


class MapperProcess:
    """The child mapping the recording at `path` ("-": this process's stdin), read as batches."""

    def __init__(self, path, *, batch_size, max_event_bytes, collections=(), encode=False):
        arguments = [path, str(batch_size), str(max_event_bytes), "1" if encode else "0", *collections]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "apps.indexer.mapper", *arguments], stdout=subprocess.PIPE, env=env
        )
        self._stopping = False

    @property
    def pid(self):
        return self._process.pid

    def batches(self):
        """Yield (MappedBatch, bytes of the recording read) until the child has mapped it all;
        raises MapperFailed when the child ends early (unless stop() asked it to)."""
        output = self._process.stdout
        while True:
            try:
                kind, *frame = pickle.load(output)
            except (EOFError, pickle.UnpicklingError, ValueError, OSError):
                if self._stopping:
                    return
                raise MapperFailed(f"the mapping process ended early ({self._exit_status()})") from None
            if kind == _DONE:
                return
            rows, events, max_time_us, counts, rejects, examples, position = frame
            yield MappedBatch(rows, events, max_time_us, counts, rejects, examples), position

    def stop(self):
        """Ask the child to end now (thread-safe; batches() then returns)."""
        self._stopping = True
        if self._process.poll() is None:
            self._process.terminate()

    def close(self):
        self.stop()
        self._process.stdout.close()
        self._process.wait()

    def _exit_status(self):
        code = self._process.wait()
        if code < 0:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        return f"exit status {code}"


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


def _send(output, batch, position, encode):
    frame = (_BATCH, _encoded(batch.rows, encode), batch.events, batch.max_time_us, batch.counts, batch.rejects,
             batch.examples, position)
    pickle.dump(frame, output, protocol=pickle.HIGHEST_PROTOCOL)


def main(path, batch_size, max_event_bytes, encode, *collections):
    from apps.indexer.replay import open_replay
    from apps.indexer.rows import RowBatch, collection_matcher

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    batch_size, max_event_bytes, encode = int(batch_size), int(max_event_bytes), encode == "1"
    wanted = collection_matcher(collections) if collections else None
    output = sys.stdout.buffer
    with open_replay(path) as replay:
        batch = RowBatch(max_event_bytes, wanted)
        for line in replay.lines:
            if line.isspace():
                continue
            batch.add(line)
            if batch.events >= batch_size:
                _send(output, batch, replay.position(), encode)
                batch = RowBatch(max_event_bytes, wanted)
        if batch.events:
            _send(output, batch, replay.position(), encode)
    pickle.dump((_DONE,), output, protocol=pickle.HIGHEST_PROTOCOL)
    output.flush()


if __name__ == "__main__":
    try:
        main(*sys.argv[1:])
    except BrokenPipeError:  # the parent stopped reading: it is stopping
        os._exit(1)
