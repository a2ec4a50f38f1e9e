"""Recorded Jetstream events for `consume_firehose --replay`: JSON lines, plain, .gz or .zst, or stdin."""

import gzip
import io
import os
import stat
import sys
from contextlib import contextmanager

import zstandard


class ReplayFile:
    """The lines of a recording, and how far through the file (in its stored bytes) reading is."""

    def __init__(self, path):
        self.path = path
        if path == "-":
            self._raw = sys.stdin.buffer
            self.size = None
            self.lines = self._raw
            return
        self._raw = open(path, "rb", buffering=1 << 20)
        status = os.fstat(self._raw.fileno())
        self.size = status.st_size if stat.S_ISREG(status.st_mode) else None  # a pipe has no size, no position
        if path.endswith(".gz"):
            self.lines = io.BufferedReader(gzip.GzipFile(fileobj=self._raw), buffer_size=1 << 20)
        elif path.endswith(".zst"):
            reader = zstandard.ZstdDecompressor().stream_reader(self._raw, read_across_frames=True)
            self.lines = io.BufferedReader(reader, buffer_size=1 << 20)
        else:
            self.lines = self._raw

    def position(self):
        """Bytes of the stored file read so far (None for stdin or a pipe)."""
        return None if self.size is None else self._raw.tell()

    def close(self):
        if self.path != "-":
            self.lines.close()
            self._raw.close()


def replay_size(path):
    """The stored size of the recording at `path`; None for stdin or a pipe."""
    if path == "-":
        return None
    status = os.stat(path)
    return status.st_size if stat.S_ISREG(status.st_mode) else None


@contextmanager
def open_replay(path):
    replay = ReplayFile(path)
    try:
        yield replay
    finally:
        replay.close()
