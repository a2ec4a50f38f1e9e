"""Request analytics and interactions, written to ClickHouse in batches, off the request path.

A request only appends a row to an in-process buffer. A background thread writes the buffer
every few seconds, or sooner once it holds a full batch, through the one bulk insert path. Rows
still buffered when the process exits are written then. Losing the rows of a failed insert is
accepted (they are analytics); the failure is logged.
"""

import atexit
import logging
import os
import threading

from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)


class RowBuffer:
    """Rows for one ClickHouse table, written by a background thread in batches of up to `batch_size`."""

    def __init__(self, table, columns, batch_size=1000, interval=5.0):
        self.table = table
        self.columns = columns
        self.batch_size = batch_size
        self.interval = interval
        self._rows = []
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._due = threading.Event()
        self._writer_pid = None

    def add(self, row):
        with self._lock:
            self._rows.append(row)
            full = len(self._rows) >= self.batch_size
            if self._writer_pid != os.getpid():
                # Started lazily, and again in a forked child, where the parent's thread does not exist.
                self._writer_pid = os.getpid()
                threading.Thread(target=self._write_forever, name=f"{self.table}-writer", daemon=True).start()
        if full:
            self._due.set()

    def flush(self):
        """Write every buffered row now; returns how many were written."""
        with self._writing:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return 0
            try:
                connections["clickhouse"].insert_rows(self.table, self.columns, rows)
            except DatabaseError:
                logger.exception("dropped %d rows for %s", len(rows), self.table)
                return 0
            return len(rows)

    def _write_forever(self):
        while True:
            self._due.wait(self.interval)
            self._due.clear()
            self.flush()


feed_requests = RowBuffer(
    "feed_request_analytics",
    ["feed_name", "user_did", "limit_requested", "has_cursor", "latency_us", "requested_at", "time_us"],
)
interactions = RowBuffer(
    "feed_interactions",
    ["user_did", "feed_uri", "item_uri", "event", "feed_context", "req_id", "received_at"],
)
atexit.register(feed_requests.flush)
atexit.register(interactions.flush)
