"""Prometheus metrics of the firehose consumer (on the default registry, exposed by the web app).

Counters are bumped once per written batch, from the batch's own tallies, never per event: the
hot path stays free of metric calls.
"""

from prometheus_client import Counter, Gauge, Histogram

from .rows import REASONS

EVENTS = Counter(
    "skyline_indexer_events_total",
    "Firehose events written, by kind and collection (collections outside app.bsky's main ones are 'other').",
    ["kind", "collection"],
)
REJECTS = Counter("skyline_indexer_rejects_total", "Firehose events rejected, by reason.", ["reason"])
for _reason in REASONS:  # every reason's series from the start, at 0, so a rate or an alert on it has a base
    REJECTS.labels(_reason)
RECONNECTS = Counter("skyline_indexer_reconnects_total", "Jetstream reconnections, by cause.", ["cause"])
LAG = Gauge("skyline_indexer_lag_seconds", "Now minus the time_us of the newest written event (NaN: none yet).")
LAG.set(float("nan"))  # unknown until an event is written, not 0 (which would read as "caught up")
STATE = Gauge(
    "skyline_indexer_state",
    "1 for the consumer's current state (connecting, connected, disconnected, replaying, stopped), else 0.",
    ["state"],
)
LAST_EVENT = Gauge(
    "skyline_indexer_last_event_timestamp_seconds", "When the consumer last received an event (unix seconds)."
)
CURSOR = Gauge("skyline_indexer_cursor_time_us", "The saved cursor: every event up to it is written.")
BATCH_ROWS = Histogram(
    "skyline_indexer_batch_rows",
    "Rows per insert, by table.",
    ["table"],
    buckets=(1, 10, 100, 1_000, 5_000, 10_000, 20_000, 50_000, 100_000),
)
FLUSH_SECONDS = Histogram(
    "skyline_indexer_flush_seconds",
    "Time to write one batch (every table) and save the cursor.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITE_ERRORS = Counter("skyline_indexer_write_errors_total", "Failed batch writes (retried).")

PLC_OPERATIONS = Counter(
    "skyline_plc_operations_total", "PLC directory operations written, by type.", ["operation_type"]
)
PLC_FETCH_ERRORS = Counter(
    "skyline_plc_fetch_errors_total",
    "Failed PLC export pages, by cause (rate_limited, http_status, network, unreadable, store).",
    ["cause"],
)
PLC_SKIPPED_LINES = Counter("skyline_plc_skipped_lines_total", "PLC export lines that were not operations.")
PLC_CURSOR = Gauge("skyline_plc_cursor_seconds", "createdAt (unix seconds) of the newest written PLC operation.")
