"""Request analytics and interactions, written to ClickHouse in batches, off the request path.

A request only appends a row to an in-process buffer. A background thread writes the buffer
every few seconds, or sooner once it holds a full batch, through the one bulk insert path. Rows
still buffered when the process exits are written then.

These rows are analytics: losing some is accepted, stopping or growing without end is not. So
every row that is not written is dropped and counted (`skyline_analytics_dropped_rows_total`):
- `buffer_full`: the buffer is bounded (rows, and characters for free text), so a store that
  falls behind costs rows, never the process's memory;
- `unwritable`: a row the store refuses; the batch is halved until that row is alone, and the
  rest is written;
- `store_unavailable`: a batch that failed while the store does not answer at all.
The writer thread survives any error of a write; should it die anyway, the next row added
starts a new one (counted in `skyline_analytics_writer_restarts_total`).
"""

import atexit
import datetime
import logging
import os
import threading
from typing import NamedTuple

from django.db import DatabaseError, connections
from prometheus_client import Counter

logger = logging.getLogger(__name__)

DROPPED = Counter(
    "skyline_analytics_dropped_rows_total",
    "Analytics rows not written, by table and reason (buffer_full, unwritable, store_unavailable).",
    ["table", "reason"],
)
RESTARTS = Counter(
    "skyline_analytics_writer_restarts_total",
    "Analytics writer threads started again after dying.",
    ["table"],
)


class RowBuffer:
    """Rows for one ClickHouse table, written by a background thread in batches of up to `batch_size`.

    It holds at most `max_rows` rows and, when `max_chars` is given, at most that many characters
    in the rows' strings (checked only then: the hot path's rows are not measured).
    """

    def __init__(self, table, columns, batch_size=1000, interval=5.0, max_rows=50_000, max_chars=None):
        self.table = table
        self.columns = columns
        self.batch_size = batch_size
        self.interval = interval
        self.max_rows = max_rows
        self.max_chars = max_chars
        self._rows = []
        self._chars = 0
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._due = threading.Event()
        self._writer_running = False
        self._writer_pid = None

    def add(self, row):
        """Buffer `row`; False when it was dropped because the buffer is full."""
        chars = sum(len(value) for value in row if isinstance(value, str)) if self.max_chars else 0
        with self._lock:
            if not self._writer_running or self._writer_pid != os.getpid():
                self._start_writer()
            if len(self._rows) >= self.max_rows or (chars and self._chars + chars > self.max_chars):
                DROPPED.labels(self.table, "buffer_full").inc()
                self._due.set()
                return False
            self._rows.append(row)
            self._chars += chars
            full = len(self._rows) >= self.batch_size
        if full:
            self._due.set()
        return True

    def _start_writer(self):
        """Start the writer thread: lazily, again in a forked child (where the parent's does not
        exist), and again if it died."""
        if self._writer_pid == os.getpid():
            RESTARTS.labels(self.table).inc()
            logger.error("the %s writer had stopped; starting a new one", self.table)
        self._writer_pid = os.getpid()
        self._writer_running = True
        threading.Thread(target=self._write_forever, name=f"{self.table}-writer", daemon=True).start()

    def flush(self):
        """Write every buffered row now; returns how many were written."""
        with self._writing:
            with self._lock:
                rows, self._rows, self._chars = self._rows, [], 0
            # Plain tuples: the insert path's JSON encoder does not take named ones.
            return self._write([tuple(row) for row in rows]) if rows else 0

    def _write(self, rows):
        try:
            connections["clickhouse"].insert_rows(self.table, self.columns, rows)
        except Exception as exc:
            if not _store_answers():
                logger.warning(
                    "dropped %d rows for %s: the store is unavailable (%s)", len(rows), self.table, exc
                )
                DROPPED.labels(self.table, "store_unavailable").inc(len(rows))
                return 0
            # The store is up, so the rows' content is at fault (a string that cannot be encoded, a
            # value out of range): find the rows at fault and write the others.
            if len(rows) == 1:
                logger.warning("dropped a row the store refused for %s: %s", self.table, exc)
                DROPPED.labels(self.table, "unwritable").inc()
                return 0
            middle = len(rows) // 2
            return self._write(rows[:middle]) + self._write(rows[middle:])
        return len(rows)

    def _write_forever(self):
        try:
            while True:
                self._due.wait(self.interval)
                self._due.clear()
                self.flush()
        finally:
            # Checked by add(), which starts a new writer (a flag, not is_alive(): add is the hot path).
            self._writer_running = False


def _store_answers():
    try:
        with connections["clickhouse"].cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


class FeedRequestRow(NamedTuple):
    """A row of feed_request_analytics: one getFeedSkeleton answered."""

    feed_name: str
    user_did: str  # '' for a viewer who sent no token
    limit_requested: int
    has_cursor: int  # 0 or 1
    latency_us: int
    requested_at: datetime.datetime
    time_us: int


class InteractionRow(NamedTuple):
    """A row of feed_interactions: one interaction a viewer's app sent."""

    user_did: str
    feed_uri: str
    item_uri: str
    event: str
    feed_context: str
    req_id: str
    received_at: datetime.datetime


feed_requests = RowBuffer("feed_request_analytics", FeedRequestRow._fields)
# At most ~64 MB of interaction text (4 bytes a character at worst).
interactions = RowBuffer("feed_interactions", InteractionRow._fields, max_chars=16_000_000)
atexit.register(feed_requests.flush)
atexit.register(interactions.flush)
