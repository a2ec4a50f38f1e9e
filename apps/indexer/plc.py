"""Copy the PLC directory's operation log (`GET /export`) into plc_operations, a page at a time.

The directory serves its log as JSON lines, oldest first, `count` (at most 1000) per page after a
cursor. A directory with sequence numbers gives each entry a `seq` and takes `after=<seq>`; an older
one pages by `createdAt` (`after=<timestamp>`). Asking for `after=0` first works with both: the
entries then say which kind of cursor to send next. (Paging by createdAt, the directory itself skips
operations that share the last one's millisecond but did not fit on its page; sequence numbers do not.)

Each page's rows are written before its cursor is saved, so a crash in between makes the next run
fetch the page again; its rows replace themselves (plc_operations is keyed by DID and operation CID).
`PlcExporter.run()` returns after `stop()` (thread-safe); signal handling is the caller's.
"""

import datetime
import logging
import threading
import time

import orjson
from django.conf import settings
from django.db import DatabaseError, connections
from opentelemetry.trace import StatusCode
from redis import RedisError

from apps.indexer import health, metrics
from apps.indexer.cursor import cursor_store
from skyline.atproto import outbound
from skyline.backoff import Backoff
from skyline.atproto.syntax import is_plc_did, utc_text
from skyline.tracing import tracer

logger = logging.getLogger(__name__)

USER_AGENT = "skyline-plc-export/1.0"
PAGE_SIZE = 1000
MAX_LINE_BYTES = 1_000_000
# A page of PAGE_SIZE operations is about a megabyte; the directory is trusted, its answers still capped.
PAGE_BYTES = 64 * 1024 * 1024
TIMEOUT = 30.0
MAX_RETRY_AFTER = 300.0
COLUMNS = ("did", "cid", "operation_type", "created_at", "handle", "pds", "nullified", "operation_json", "time_us")
OPERATION_TYPES = frozenset({"create", "plc_operation", "plc_tombstone"})

# The exporter's states, as the dashboard shows them.
EXPORTING, CAUGHT_UP, RETRYING, STOPPED = "exporting", "caught up", "retrying", "stopped"

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MICROSECOND = datetime.timedelta(microseconds=1)


class FetchFailed(Exception):
    """A page could not be had; `cause` labels the metric, `retry_after` is the server's wish (s)."""

    def __init__(self, cause, message, retry_after=None):
        super().__init__(message)
        self.cause = cause
        self.retry_after = retry_after


def _handle(operation):
    """The handle an operation claims: its first at:// alias, or a legacy create's `handle`."""
    aliases = operation.get("alsoKnownAs")
    if isinstance(aliases, list):
        for alias in aliases:
            if isinstance(alias, str) and alias.startswith("at://"):
                return alias[len("at://") :].lower()
    handle = operation.get("handle")
    return handle.lower() if isinstance(handle, str) else ""


def _pds(operation):
    """The PDS endpoint an operation names: services.atproto_pds, or a legacy create's `service`."""
    services = operation.get("services")
    if isinstance(services, dict) and isinstance(services.get("atproto_pds"), dict):
        endpoint = services["atproto_pds"].get("endpoint")
        return endpoint if isinstance(endpoint, str) else ""
    service = operation.get("service")
    return service if isinstance(service, str) else ""


def operation_row(entry):
    """The plc_operations row of one export entry, or None when it is not a readable operation."""
    if not isinstance(entry, dict):
        return None
    did, cid, operation, created = entry.get("did"), entry.get("cid"), entry.get("operation"), entry.get("createdAt")
    if not (isinstance(did, str) and is_plc_did(did) and isinstance(cid, str) and cid
            and isinstance(operation, dict) and isinstance(created, str)):
        return None
    try:
        created_at = datetime.datetime.fromisoformat(created)
    except ValueError:
        return None
    if created_at.tzinfo is None:
        return None
    kind = operation.get("type")
    kind = kind if kind in OPERATION_TYPES else "unknown"
    time_us = (created_at - _EPOCH) // _MICROSECOND
    return (did, cid, kind, created_at, _handle(operation), _pds(operation), int(entry.get("nullified") is True),
            orjson.dumps(operation).decode(), time_us)


class Page:
    """One /export answer: its rows, the cursor after it, and whether it was full (more may follow)."""

    def __init__(self, body, page_size):
        self.rows = []
        self.seq = None
        self.time_us = None
        self.skipped = 0
        lines = [line for line in body.split(b"\n") if line.strip()]
        self.full = len(lines) >= page_size
        for line in lines:
            entry = None
            if len(line) <= MAX_LINE_BYTES:
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    pass
            row = operation_row(entry)
            if row is None:
                self.skipped += 1
                continue
            self.rows.append(row)
            self.time_us = row[-1]
            seq = entry.get("seq")
            self.seq = seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None


def _timestamp(time_us):
    """A time_us as the directory writes createdAt (milliseconds, Z)."""
    moment = _EPOCH + datetime.timedelta(microseconds=time_us)
    return utc_text(moment, "milliseconds")


class ExportCursor:
    """Where the export resumes: the last written entry's seq, else (an older directory) its createdAt.

    Kept like the firehose cursor (Redis with REDIS_URL, else the relational store), as two integers.
    """

    def __init__(self, name="plc_export"):
        self._seq = cursor_store(f"{name}_seq")
        self._time = cursor_store(f"{name}_time")

    def load(self):
        """The `after` to send: a seq, a createdAt, or "0" (from the start, either way)."""
        seq = self._seq.load()
        if seq is not None:
            return str(seq)
        time_us = self._time.load()
        return _timestamp(time_us) if time_us is not None else "0"

    def save(self, page):
        if page.seq is not None:
            self._seq.save(page.seq)
        else:
            self._time.save(page.time_us)


class PlcExporter:
    def __init__(self, *, url=None, rate=None, idle_seconds=None, page_size=PAGE_SIZE, after=None,
                 until_caught_up=False, backoff=None, cursor=None):
        """Export from the directory at `url` (default PLC_URL), at most `rate` pages a second.

        `after` overrides the saved cursor for this run. `until_caught_up` makes run() return once
        a page comes back short instead of polling every `idle_seconds`. `backoff` paces retries.
        """
        self.url = (url or settings.PLC_URL).rstrip("/")
        self.interval = 1.0 / (rate or settings.PLC_EXPORT_RATE)
        self.idle_seconds = settings.PLC_EXPORT_IDLE_SECONDS if idle_seconds is None else idle_seconds
        self.page_size = page_size
        self.until_caught_up = until_caught_up
        self.backoff = backoff or Backoff(base=1.0, cap=60.0)
        self.cursor = cursor or ExportCursor()
        self.after = after
        self.operations_written = 0
        self.pages_written = 0
        self._stopping = threading.Event()
        self._next_fetch = 0.0
        self.health = {"state": None, "url": self.url, "operations_written": 0, "pages_written": 0, "cursor": None,
                       "seq": None, "caught_up": False, "errors": {}, "last_error": None, "last_error_at": None,
                       "last_page_at": None}

    def stop(self):
        """Stop after the page in hand (if it is written, its cursor is saved first)."""
        self._stopping.set()

    def run(self):
        try:
            with outbound.Client(self.url, trusted=True) as http:
                self._export(http)
        finally:
            self._report(state=STOPPED)
            connections.close_all()

    def _report(self, **changes):
        """Publish the exporter's state for the dashboard (on every page, error and change of state)."""
        self.health.update(changes)
        health.publish_plc(self.health)

    def _failed(self, cause, message):
        errors = self.health["errors"]
        self._report(state=RETRYING, errors={**errors, cause: errors.get(cause, 0) + 1}, last_error=message,
                     last_error_at=time.time())

    def _export(self, http):
        after = self.after if self.after is not None else self.cursor.load()
        self._report(state=EXPORTING, cursor=after)
        while not self._stopping.is_set():
            self._pace()
            if self._stopping.is_set():
                return
            # One span per page: its fetch (the HTTP call's span nests in it), write and cursor save.
            with tracer().start_as_current_span("plc.page", attributes={"plc.after": after}) as span:
                try:
                    page = self._fetch(http, after)
                except FetchFailed as failure:
                    span.set_status(StatusCode.ERROR, failure.cause)
                    metrics.PLC_FETCH_ERRORS.labels(failure.cause).inc()
                    self._failed(failure.cause, str(failure))
                    delay = failure.retry_after if failure.retry_after is not None else self.backoff.next_delay()
                    logger.warning("plc export: %s; trying again in %.1fs", failure, delay)
                    self._stopping.wait(delay)
                    continue
                span.set_attribute("plc.operations", len(page.rows))
                if page.rows and not self._persist(self._write, page):
                    return
                if page.rows and not self._persist(self.cursor.save, page):
                    return
            self.backoff.reset()
            if page.rows:
                after = str(page.seq) if page.seq is not None else _timestamp(page.time_us)
                self._account(page)
            self._report(state=EXPORTING if page.full else CAUGHT_UP, cursor=after, last_page_at=time.time(),
                         operations_written=self.operations_written, pages_written=self.pages_written,
                         seq=page.seq if page.seq is not None else self.health["seq"], caught_up=not page.full)
            if not page.full:
                if self.until_caught_up:
                    return
                self._stopping.wait(self.idle_seconds)

    def _pace(self):
        """Wait (or until stop) so that fetches are at least 1/rate seconds apart."""
        now = time.monotonic()
        wait = self._next_fetch - now
        if wait > 0:
            self._stopping.wait(wait)
        self._next_fetch = max(now, self._next_fetch) + self.interval

    def _fetch(self, http, after):
        try:
            response = http.request(
                "GET", "/export", limit=PAGE_BYTES, seconds=TIMEOUT,
                params={"count": self.page_size, "after": after},
                headers={"User-Agent": USER_AGENT, "Accept": "application/jsonlines"},
            )
        except outbound.OutboundError as exc:
            raise FetchFailed("network", f"{self.url}: {exc}") from None
        if response.status == 429:
            raise FetchFailed("rate_limited", "the directory is rate limiting us",
                              _retry_after(response.headers.get("Retry-After")))
        if response.status != 200:
            raise FetchFailed("http_status", f"/export answered HTTP {response.status}")
        page = Page(response.content, self.page_size)
        if page.skipped:
            metrics.PLC_SKIPPED_LINES.inc(page.skipped)
            logger.warning("plc export: skipped %d line(s) that were not operations after %s", page.skipped, after)
        if page.full and not page.rows:
            raise FetchFailed("unreadable", f"a full page after {after} held no readable operation")
        return page

    def _write(self, page):
        connections["clickhouse"].insert_rows("plc_operations", COLUMNS, page.rows)

    def _persist(self, action, page):
        """Run `action(page)` until it works (True), retrying store errors until stop() (False)."""
        while True:
            try:
                action(page)
                return True
            except (DatabaseError, RedisError) as exc:
                metrics.PLC_FETCH_ERRORS.labels("store").inc()
                self._failed("store", f"the store failed: {exc}")
                delay = self.backoff.next_delay()
                logger.error("plc export: the store failed (%s); trying again in %.1fs", exc, delay)
                if self._stopping.wait(delay):
                    return False

    def _account(self, page):
        self.pages_written += 1
        self.operations_written += len(page.rows)
        counts = {}
        for row in page.rows:
            counts[row[2]] = counts.get(row[2], 0) + 1
        for kind, count in counts.items():
            metrics.PLC_OPERATIONS.labels(kind).inc(count)
        metrics.PLC_CURSOR.set(page.time_us / 1_000_000)


def _retry_after(value):
    """Retry-After in seconds (capped), or None when absent or not a number of seconds."""
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value)))
    except (TypeError, ValueError):
        return None
