"""Write RowBatches to ClickHouse on a thread of their own, in order, and only then move the cursor.

The reader hands over a full batch and goes on parsing while the previous one is inserted (chDB
and the server driver both release the GIL while they write). At most `max_pending` batches wait:
beyond that `submit` blocks, which is the back-pressure that keeps memory bounded.
"""

import logging
import queue
import random
import threading
import time

from django.db import DatabaseError, connections
from redis import RedisError

from apps.indexer import health, metrics
from apps.indexer.rows import COLUMNS
from skyline.tracing import tracer

logger = logging.getLogger(__name__)

_CLOSE = object()
REJECT_LOG_INTERVAL = 10.0


class WriteFailed(Exception):
    """The store refused a batch until the consumer had to stop: its events are not written."""


class Writer:
    def __init__(self, cursor=None, max_pending=2, retry_seconds=(0.5, 30.0), attempts_after_stop=3):
        """`cursor` is where the written position is saved (None: nowhere, as for a replay)."""
        self._cursor = cursor
        self._queue = queue.Queue(maxsize=max_pending)
        self._retry_seconds = retry_seconds
        self._attempts_after_stop = attempts_after_stop
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="firehose-writer", daemon=True)
        self.failure = None
        self.written_time_us = None
        self.events_written = 0
        self.rejects = {}
        self.last_error = None
        self._rate = (time.monotonic(), 0, 0.0)
        self._reject_log = {}

    def start(self):
        self._thread.start()
        return self

    def submit(self, batch):
        """Queue `batch` for writing, waiting while `max_pending` batches are ahead of it."""
        if self.failure is not None:
            raise self.failure
        self._queue.put(batch)

    def stop_retrying(self):
        """From now on a failing write is tried only a few more times (the consumer is stopping)."""
        self._closing.set()

    def close(self):
        """Write what is queued and stop; raises WriteFailed when some of it could not be written."""
        self._closing.set()
        self._queue.put(_CLOSE)
        self._thread.join()
        if self.failure is not None:
            raise self.failure

    def _run(self):
        try:
            while (batch := self._queue.get()) is not _CLOSE:
                if self.failure is not None:
                    continue
                try:
                    with tracer().start_as_current_span("firehose.batch", attributes=_span_attributes(batch)):
                        self._write(batch)
                except Exception as exc:
                    logger.exception("firehose: the writer failed")
                    self.failure = WriteFailed(f"the writer failed: {exc!r}")
        finally:
            connections.close_all()

    def _write(self, batch):
        started = time.perf_counter()
        for table, rows in batch.rows.items():
            if rows:
                if not self._retrying(connections["clickhouse"].insert_rows, (table, COLUMNS[table], rows),
                                      f"writing {len(rows)} rows to {table}"):
                    return
                metrics.BATCH_ROWS.labels(table).observe(len(rows))
        newest = batch.max_time_us
        if newest is not None and (self.written_time_us is None or newest > self.written_time_us):
            if self._cursor is not None:
                if not self._retrying(self._cursor.save, (newest,), "saving the cursor"):
                    return
                metrics.CURSOR.set(newest)
            self.written_time_us = newest
        metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
        self._account(batch)

    def _retrying(self, action, args, what):
        """Run `action(*args)` until it works (True) or, once closing, until the attempts run out."""
        attempt = 0
        while True:
            try:
                action(*args)
                return True
            except (DatabaseError, RedisError) as exc:
                attempt += 1
                metrics.WRITE_ERRORS.inc()
                self.last_error = f"{what}: {exc}"
                logger.error("firehose: %s (attempt %d)", self.last_error, attempt)
                if self._closing.is_set() and attempt >= self._attempts_after_stop:
                    self.failure = WriteFailed(f"{self.last_error}; the cursor stays at {self.written_time_us}")
                    return False
                base, cap = self._retry_seconds
                delay = min(cap, base * 2 ** (attempt - 1))
                time.sleep(delay / 2 + random.uniform(0, delay / 2))

    def _account(self, batch):
        """Metrics, health and the rate-limited reject log, once the batch is written."""
        for (kind, collection), count in batch.counts.items():
            metrics.EVENTS.labels(kind, collection).inc(count)
        for reason, count in batch.rejects.items():
            metrics.REJECTS.labels(reason).inc(count)
            self.rejects[reason] = self.rejects.get(reason, 0) + count
        self.events_written += batch.events
        if batch.rejects:
            self._log_rejects(batch)
        now = time.monotonic()
        since, events_then, rate = self._rate
        if now - since >= 1.0:
            rate = (self.events_written - events_then) / (now - since)
            self._rate = (now, self.events_written, rate)
        if self.written_time_us is not None:
            metrics.LAG.set(max(0.0, time.time() - self.written_time_us / 1_000_000))
        health.publish(
            last_time_us=self.written_time_us,
            events_per_second=rate,
            rejects=self.rejects,
            last_error=self.last_error,
        )

    def _log_rejects(self, batch):
        """One line per reason at most every REJECT_LOG_INTERVAL seconds, with the count since the last."""
        now = time.monotonic()
        for reason, count in batch.rejects.items():
            logged_at, unlogged = self._reject_log.get(reason, (0.0, 0))
            unlogged += count
            if now - logged_at >= REJECT_LOG_INTERVAL:
                logger.warning(
                    "firehose: rejected %d event(s) as %s, e.g. %s", unlogged, reason, batch.examples[reason]
                )
                self._reject_log[reason] = (now, 0)
            else:
                self._reject_log[reason] = (logged_at, unlogged)
            self.last_error = f"rejected as {reason}: {batch.examples[reason]}"


def _span_attributes(batch):
    attributes = {"firehose.rows": sum(len(rows) for rows in batch.rows.values()),
                  "firehose.tables": sorted(table for table, rows in batch.rows.items() if rows)}
    if batch.max_time_us is not None:
        attributes["firehose.cursor"] = batch.max_time_us
    return attributes
