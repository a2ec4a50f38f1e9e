"""Write RowBatches to ClickHouse on a thread of their own, in order, and only then move the cursor.

The reader hands over a full batch and goes on parsing while the previous one is inserted (chDB
and the server driver both release the GIL while they write). At most `max_pending` batches wait:
beyond that `submit` blocks, which is the back-pressure that keeps memory bounded. Batches that are
already waiting when the writer comes for the next one are written together, one insert per table:
each insert costs the store a fixed tens of milliseconds and a part to merge later, so a writer that
falls behind catches up with fewer, larger inserts.

Two kinds of failed insert are told apart by the store's error code. The store being unavailable
(down, missing table, out of memory...) is retried until it comes back, the cursor held. The store
refusing the rows' content (a value its column cannot take) would fail the same way forever: the
writer then bisects the rows to find the ones it refuses, writes the rest, and keeps those few as
`store_refused` dead letters (the row as JSON), so the cursor only moves once every good row is in.
"""

import datetime
import json
import logging
import queue
import sys
import threading
import time

from django.db import DatabaseError, connections

from apps.indexer import health, metrics
from apps.indexer.rows import COLUMNS, EncodedRows
from skyline.backoff import Backoff
from skyline.tracing import tracer

logger = logging.getLogger(__name__)

_CLOSE = object()
REJECT_LOG_INTERVAL = 10.0

# ClickHouse error codes that say rows cannot go into their columns, whatever the store's health.
CONTENT_ERROR_CODES = frozenset({
    6,  # CANNOT_PARSE_TEXT
    7,  # INCORRECT_NUMBER_OF_COLUMNS
    25,  # CANNOT_PARSE_ESCAPE_SEQUENCE
    26,  # CANNOT_PARSE_QUOTED_STRING
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  # CANNOT_PARSE_DATE
    41,  # CANNOT_PARSE_DATETIME
    53,  # TYPE_MISMATCH
    69,  # ARGUMENT_OUT_OF_BOUND
    70,  # CANNOT_CONVERT_TYPE
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    128,  # TOO_LARGE_ARRAY_SIZE
    130,  # CANNOT_READ_ARRAY_FROM_TEXT
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    376,  # CANNOT_PARSE_UUID
    395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (a materialized view's throwIf)
    407,  # DECIMAL_OVERFLOW
    441,  # CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING
    467,  # CANNOT_PARSE_BOOL
    691,  # UNKNOWN_ELEMENT_OF_ENUM
})
MAX_REFUSAL_DETAIL = 300


def _unavailable_errors():
    """The errors of a store being unavailable: the database's, and Redis's once anything loaded
    redis (the cursor or the cache in Redis); redis is not imported for this, as it costs a
    noticeable part of the start-up and a process that never loaded it cannot raise its errors."""
    redis = sys.modules.get("redis")
    return (DatabaseError, redis.RedisError) if redis is not None else (DatabaseError,)


def store_refused(exc):
    """Whether `exc`, raised by an insert, is the store refusing the rows' content rather than being
    unavailable: a ClickHouse content error code, or a value the driver could not even encode."""
    if isinstance(exc, DatabaseError):
        driver_error = exc.__cause__ or exc  # Django's wrapper, then the DB-API error holding the code
        cause = driver_error.args[0] if driver_error.args else None
        return getattr(cause, "code", None) in CONTENT_ERROR_CODES
    return isinstance(exc, (TypeError, ValueError))


def _safe_text(text):
    """`text` as valid UTF-8 (lone surrogates spelt as escapes), so a dead letter can always be stored."""
    return text.encode("utf-8", "backslashreplace").decode()


def dead_letter(table, row, exc):
    """A firehose_rejects row for a `row` of `table` that the store refused with `exc`."""
    lines = str(exc).splitlines() or [type(exc).__name__]
    reason = next((line for line in lines if "Exception:" in line), lines[0])
    raw = json.dumps(dict(zip(COLUMNS[table], row)), ensure_ascii=False, default=str)
    return (datetime.datetime.now(datetime.timezone.utc), "store_refused",
            _safe_text(f"{table}: {reason}"[:MAX_REFUSAL_DETAIL]), _safe_text(raw))


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
            closing = False
            while not closing and (batch := self._queue.get()) is not _CLOSE:
                batch, closing = self._with_waiting(batch)
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

    def _with_waiting(self, batch):
        """`batch` joined with the batches already waiting behind it, and whether the close came
        among them."""
        batches = [batch]
        while True:
            try:
                waiting = self._queue.get_nowait()
            except queue.Empty:
                return joined(batches), False
            if waiting is _CLOSE:
                return joined(batches), True
            batches.append(waiting)

    def _write(self, batch):
        started = time.perf_counter()
        refused = []
        for table, rows in batch.rows.items():
            if rows:
                if not self._insert(table, rows, refused):
                    return
                metrics.BATCH_ROWS.labels(table).observe(len(rows))
        if refused:
            dead = [dead_letter(*item) for item in refused]
            if not self._retrying(connections["clickhouse"].insert_rows,
                                  ("firehose_rejects", COLUMNS["firehose_rejects"], dead),
                                  f"writing {len(dead)} refused rows to firehose_rejects"):
                return
            batch.rejects["store_refused"] = len(dead)
            batch.examples["store_refused"] = dead[0][2]
        newest = batch.max_time_us
        if newest is not None and (self.written_time_us is None or newest > self.written_time_us):
            if self._cursor is not None:
                if not self._retrying(self._cursor.save, (newest,), "saving the cursor"):
                    return
                metrics.CURSOR.set(newest)
            self.written_time_us = newest
        metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
        self._account(batch)

    def _insert(self, table, rows, refused):
        """Insert `rows` into `table`, splitting them in halves around any the store refuses for their
        content (appended to `refused` with the error); False when the store stayed unavailable
        until the writer gave up."""
        try:
            return self._retrying(connections["clickhouse"].insert_rows, (table, COLUMNS[table], rows),
                                  f"writing {len(rows)} rows to {table}")
        except Exception as exc:
            if not store_refused(exc):
                raise
            rows = rows.decoded() if hasattr(rows, "decoded") else rows  # EncodedRows: split the rows
            if len(rows) == 1:
                refused.append((table, rows[0], exc))
                return True
        middle = len(rows) // 2
        return self._insert(table, rows[:middle], refused) and self._insert(table, rows[middle:], refused)

    def _retrying(self, action, args, what):
        """Run `action(*args)` until it works (True) or, once closing, until the attempts run out.
        A refusal of the content is raised at once: trying again cannot help."""
        attempt = after_stop = 0  # attempts failed, and of those the ones that ended once closing
        backoff = Backoff(*self._retry_seconds)
        while True:
            try:
                action(*args)
                return True
            except _unavailable_errors() as exc:
                if store_refused(exc):
                    raise
                attempt += 1
                metrics.WRITE_ERRORS.inc()
                self.last_error = f"{what}: {exc}"
                logger.error("firehose: %s (attempt %d)", self.last_error, attempt)
                if self._closing.is_set():
                    after_stop += 1
                    if after_stop >= self._attempts_after_stop:
                        self.failure = WriteFailed(f"{self.last_error}; the cursor stays at {self.written_time_us}")
                        return False
                time.sleep(backoff.next_delay())

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


class JoinedBatch:
    """Consecutive batches written as one: what the writer reads of a batch, summed."""

    __slots__ = ("rows", "events", "max_time_us", "counts", "rejects", "examples")

    def __init__(self, batches):
        self.rows = {}
        for table in {table: None for batch in batches for table in batch.rows}:  # in order, once each
            parts = [batch.rows[table] for batch in batches if batch.rows.get(table)]
            if parts:
                self.rows[table] = _joined_rows(parts)
        self.events = sum(batch.events for batch in batches)
        times = [batch.max_time_us for batch in batches if batch.max_time_us is not None]
        self.max_time_us = max(times) if times else None
        self.counts, self.rejects, self.examples = {}, {}, {}
        for batch in batches:
            for key, count in batch.counts.items():
                self.counts[key] = self.counts.get(key, 0) + count
            for reason, count in batch.rejects.items():
                self.rejects[reason] = self.rejects.get(reason, 0) + count
            for reason, example in batch.examples.items():
                self.examples.setdefault(reason, example)


def joined(batches):
    """One batch of `batches`, in order (the batch itself when there is one)."""
    return batches[0] if len(batches) == 1 else JoinedBatch(batches)


def _joined_rows(parts):
    """One table's rows from several batches: EncodedRows joined as bytes, else plain rows."""
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(part, EncodedRows) for part in parts):
        return EncodedRows.joined(parts)
    rows = []
    for part in parts:
        rows.extend(part.decoded() if isinstance(part, EncodedRows) else part)
    return rows


def _span_attributes(batch):
    attributes = {"firehose.rows": sum(len(rows) for rows in batch.rows.values()),
                  "firehose.tables": sorted(table for table, rows in batch.rows.items() if rows)}
    if batch.max_time_us is not None:
        attributes["firehose.cursor"] = batch.max_time_us
    return attributes
