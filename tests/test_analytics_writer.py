"""The analytics writers: a row the store refuses is dropped and counted, the rest is written, the
buffer never grows past its bound, and a writer thread that dies is started again."""

import datetime
import time

import pytest
from prometheus_client import REGISTRY

from apps.feeds import analytics
from apps.feeds.analytics import RowBuffer
from tests.support.stores import BOTH_STORES, query

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

TABLE = "feed_interactions"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def interaction(item):
    return ("did:plc:viewer", "at://feed", item, "app.bsky.feed.defs#interactionSeen", "", "", NOW)


def buffer(**options):
    return RowBuffer(TABLE, analytics.interactions.columns, **{"interval": 60, **options})


def dropped(reason):
    labels = {"table": TABLE, "reason": reason}
    return REGISTRY.get_sample_value("skyline_analytics_dropped_rows_total", labels) or 0


def restarts():
    return REGISTRY.get_sample_value("skyline_analytics_writer_restarts_total", {"table": TABLE}) or 0


def stored_items():
    return [item for (item,) in query(f"SELECT item_uri FROM {TABLE} ORDER BY item_uri")]


def wait_until(condition, what):
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_row_the_store_refuses_is_dropped_and_counted_and_the_rest_is_written():
    rows = buffer()
    before = dropped("unwritable")
    for item in ["a1", "a2", "\ud800x", "a3", "a4", "a5"]:
        rows.add(interaction(item))
    assert rows.flush() == 5
    assert stored_items() == ["a1", "a2", "a3", "a4", "a5"]
    assert dropped("unwritable") == before + 1


def test_the_writer_thread_writes_on_after_a_batch_with_a_row_it_cannot_write():
    rows = buffer(batch_size=2)
    rows.add(interaction("\ud800x"))
    rows.add(interaction("b1"))
    wait_until(lambda: stored_items() == ["b1"], "the good row of the first batch was not written")
    rows.add(interaction("b2"))
    rows.add(interaction("b3"))
    wait_until(lambda: stored_items() == ["b1", "b2", "b3"], "the writer stopped after the unwritable row")


def test_a_full_buffer_drops_and_counts_new_rows_until_it_is_written():
    rows = buffer(max_rows=2)
    before = dropped("buffer_full")
    assert [rows.add(interaction(item)) for item in ["c1", "c2", "c3"]] == [True, True, False]
    assert dropped("buffer_full") == before + 1
    # A full buffer wakes the writer.
    wait_until(lambda: stored_items() == ["c1", "c2"], "the full buffer was not written")
    assert rows.add(interaction("c4"))
    assert rows.flush() == 1
    assert stored_items() == ["c1", "c2", "c4"]


def test_the_buffer_bounds_the_characters_it_holds():
    fixed = sum(len(value) for value in interaction("") if isinstance(value, str))
    rows = buffer(max_chars=2 * fixed + 100)
    before = dropped("buffer_full")
    assert rows.add(interaction("d" * 60))
    assert not rows.add(interaction("e" * 41))
    assert rows.add(interaction("f" * 40))
    assert dropped("buffer_full") == before + 1
    rows.flush()  # the writer, woken by the full buffer, may have written some already
    assert stored_items() == ["d" * 60, "f" * 40]


def test_a_batch_written_while_the_store_is_down_is_dropped_and_counted(clickhouse_down):
    rows = buffer()
    before = dropped("store_unavailable")
    rows.add(interaction("g1"))
    rows.add(interaction("g2"))
    assert rows.flush() == 0
    assert dropped("store_unavailable") == before + 2
    clickhouse_down()
    rows.add(interaction("g3"))
    assert rows.flush() == 1
    assert stored_items() == ["g3"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_writer_thread_that_dies_is_started_again_by_the_next_row():
    rows = buffer(batch_size=1)
    before = restarts()

    def die():
        raise SystemExit

    rows.flush = die
    rows.add(interaction("h1"))
    wait_until(lambda: not rows._writer_running, "the writer did not die")
    del rows.flush
    rows.add(interaction("h2"))
    assert restarts() == before + 1
    wait_until(lambda: stored_items() == ["h1", "h2"], "the new writer did not write the buffered rows")
