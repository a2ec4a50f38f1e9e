"""Batches that wait for the writer together are written together: one insert per table, the same
rows stored as when each batch is written alone, the counts and the cursor those of all of them."""

import pytest
from django.db import connections

from apps.indexer.cursor import cursor_store
from apps.indexer.mapper import MappedBatch
from apps.indexer.rows import COLUMNS, EncodedRows, RowBatch
from apps.indexer.writer import Writer
from tests.support.firehose_events import line, story
from tests.support.firehose_tables import VISIBLE, actual_state, expected_state, visible
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)


def batch_of(events, encoded):
    batch = RowBatch(1_000_000)
    for event in events:
        batch.add(line(event))
    if not encoded:
        return batch
    rows = {table: EncodedRows.of(rows) for table, rows in batch.rows.items() if rows}
    return MappedBatch(rows, batch.events, batch.max_time_us, batch.counts, batch.rejects, batch.examples)


@pytest.fixture
def inserts(monkeypatch):
    """The tables of every insert any connection makes, in order (the inserts still run)."""
    made = []
    wrapper = type(connections["clickhouse"])
    insert_rows = wrapper.insert_rows

    def counted(self, table, columns, rows):
        made.append(table)
        return insert_rows(self, table, columns, rows)

    monkeypatch.setattr(wrapper, "insert_rows", counted)
    return made


@pytest.mark.parametrize("encoded", [False, True], ids=["rows", "encoded"])
def test_waiting_batches_are_written_with_one_insert_per_table(inserts, encoded):
    events = story() + [{"did": "not a did", "time_us": 1, "kind": "commit"}]
    halves = events[:9], events[9:]
    writer = Writer(cursor_store())
    for half in halves:
        writer.submit(batch_of(half, encoded))  # both wait: the writer has not started
    writer.start()
    writer.close()

    tables = [table for table in COLUMNS if any(batch_of(half, False).rows[table] for half in halves)]
    assert sorted(inserts) == sorted(tables)  # once each
    assert writer.events_written == len(events) and writer.rejects == {"invalid_time_us": 1}
    assert cursor_store().load() == max(event["time_us"] for event in story())
    assert actual_state() == expected_state(story())
    joined = visible()

    for table in [*VISIBLE, "firehose_rejects"]:
        connections["clickhouse"].cursor().execute(f"TRUNCATE TABLE {table}")
    for half in halves:
        alone = Writer(cursor_store()).start()
        alone.submit(batch_of(half, encoded))
        alone.close()
    assert visible() == joined


def test_encoded_rows_join_into_one_body_that_decodes_to_every_row():
    rows = [("a\tb\n\\", 1), ("\x00 \u2028 \U0001f600", 2), ("", 3)]
    parts = [EncodedRows.of(rows[:1]), EncodedRows.of([]), EncodedRows.of(rows[1:])]
    joined = EncodedRows.joined(parts)
    assert len(joined) == 3
    assert joined.decoded() == rows
