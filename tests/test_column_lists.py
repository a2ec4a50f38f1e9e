"""The column lists rows are written with come from one place each, and name their tables' columns.

A list names every column of its table but those the store fills itself (a DEFAULT, such as
indexed_at), each once.
"""

import pytest

from apps.feeds import analytics
from apps.indexer import plc, rows
from tests.support.stores import BOTH_STORES, query

LISTS = {
    **rows.COLUMNS,
    "plc_operations": plc.COLUMNS,
    "feed_request_analytics": analytics.feed_requests.columns,
    "feed_interactions": analytics.interactions.columns,
}


def store_columns(table):
    """{name: default kind ('' when the store does not fill it)} of `table` in the store."""
    return dict(query(
        "SELECT name, default_kind FROM system.columns WHERE database = currentDatabase() AND table = %s", [table]))


@pytest.mark.django_db(databases=BOTH_STORES)
@pytest.mark.parametrize("table", sorted(LISTS))
def test_a_column_list_names_each_column_its_rows_must_fill(table):
    columns = LISTS[table]
    stored = store_columns(table)
    assert stored, f"no table {table}"
    assert len(set(columns)) == len(columns)
    assert set(columns) <= set(stored)
    assert {name for name, default in stored.items() if not default} <= set(columns)


def test_the_analytics_rows_are_named_as_their_columns():
    assert analytics.feed_requests.columns == analytics.FeedRequestRow._fields
    assert analytics.interactions.columns == analytics.InteractionRow._fields
