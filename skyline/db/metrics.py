"""Prometheus metrics of the ClickHouse store: rows inserted by table, query latency and errors by kind.

Rows are counted on the one bulk insert path (`insert_rows` of both backends); every other
statement goes through Django's cursor, timed by `time_query`, an execute wrapper installed on
each ClickHouse connection as it opens. The kind is the statement's first keyword from a fixed set, so
series stay bounded.
"""

import time
from contextlib import contextmanager

from django.db.backends.signals import connection_created
from prometheus_client import Counter, Histogram

KINDS = frozenset({"select", "insert", "alter", "create", "drop", "optimize", "system", "truncate", "with"})

ROWS_INSERTED = Counter("skyline_store_rows_inserted_total", "Rows inserted into ClickHouse, by table.", ["table"])
QUERY_SECONDS = Histogram(
    "skyline_store_query_duration_seconds", "Time of ClickHouse statements, by kind (select, insert, ...).",
    ["kind"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter("skyline_store_errors_total", "ClickHouse statements that failed, by kind.", ["kind"])


def kind_of(sql):
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    word = words[0].lower() if words else ""
    # A WITH prefix is a select.
    return ("select" if word == "with" else word) if word in KINDS else "other"


@contextmanager
def timed(kind):
    """Time the statement run in the block and count its failure."""
    started = time.perf_counter()
    try:
        yield
    except Exception:
        ERRORS.labels(kind).inc()
        raise
    finally:
        QUERY_SECONDS.labels(kind).observe(time.perf_counter() - started)


def time_query(execute, sql, params, many, context):
    """A Django execute wrapper: every statement through a cursor is `timed`."""
    with timed(kind_of(sql)):
        return execute(sql, params, many, context)


def _install(sender, connection, **kwargs):
    """Time every statement of a ClickHouse connection (once, however often it reconnects)."""
    if connection.alias == "clickhouse" and time_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(time_query)


# Both backends import this module, so it is connected before their first connection.
connection_created.connect(_install)


def inserted(table, count):
    ROWS_INSERTED.labels(table).inc(count)
