"""Rows the store refuses for their content: found by halves, dead-lettered, the rest written, the
cursor moved only past what is written. The store being down is still waited out."""

import json
import pytest
from django.db import connections
from prometheus_client import REGISTRY

from apps.indexer import health
from apps.indexer.cursor import cursor_store
from apps.indexer.rows import RowBatch
from apps.indexer.writer import Writer, WriteFailed
from tests.support.firehose_events import ALICE, BOB, DAVE, T0, at, like, line, post_uri, story
from tests.support.firehose_tables import VISIBLE, visible
from tests.support.stores import BOTH_STORES, query

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

A_POST = post_uri(ALICE, "3lpost000001a")
LATER = T0 + 60_000_000
# One row per way a row can be refused: a text the column cannot parse, a name its enum lacks, a string
# that is not Unicode text, a number beyond the column's range.
BAD_LIKE = (DAVE, "3llike000009d", A_POST, ALICE, "app.bsky.feed.post", "3lpost000001a", "yesterday", 0, LATER)
BAD_RECORD = (DAVE, "app.bsky.feed.like", "3llike000009d", "upsert", "{}", at(LATER), 0, LATER)
BAD_POST = (DAVE, "3lpost000009d", post_uri(DAVE, "3lpost000009d"), at(LATER), "\ud800x", [], 0, "", "", 0, LATER)
BAD_FOLLOW = (DAVE, "3lfollow0009d", ALICE, at(LATER), 0, 2**64)


def rejects_counted(reason):
    return REGISTRY.get_sample_value("skyline_indexer_rejects_total", {"reason": reason}) or 0


def batch_of(events, poison=()):
    """A batch of `events`, with each (table, row) of `poison` slipped into the middle of its table."""
    batch = RowBatch(1_000_000)
    for event in events:
        batch.add(line(event))
    for table, row in poison:
        rows = batch.rows[table]
        rows.insert(len(rows) // 2, row)
    return batch


def write(batch, **options):
    writer = Writer(cursor_store(), **options).start()
    writer.submit(batch)
    writer.close()
    return writer


def test_rows_the_store_refuses_are_dead_lettered_and_every_good_row_is_written():
    good = story()
    counted = rejects_counted("store_refused")
    writer = write(batch_of(good, [("likes", BAD_LIKE), ("repo_records", BAD_RECORD), ("posts", BAD_POST),
                                   ("follows", BAD_FOLLOW)]))
    assert writer.rejects == {"store_refused": 4} and writer.events_written == len(good)
    assert rejects_counted("store_refused") - counted == 4
    assert health.snapshot()["rejects"] == {"store_refused": 4}
    assert cursor_store().load() == max(event["time_us"] for event in good)
    dead = query("SELECT reason, detail, raw FROM firehose_rejects ORDER BY detail")
    assert [(reason, detail.split(":")[0]) for reason, detail, _ in dead] == [
        ("store_refused", "follows"), ("store_refused", "likes"), ("store_refused", "posts"),
        ("store_refused", "repo_records")]
    assert "Code: 41." in dead[1][1] and "Code: 691." in dead[3][1]
    assert [json.loads(raw) for *_, raw in dead] == [
        {"actor_did": DAVE, "rkey": "3lfollow0009d", "target_did": ALICE, "created_at": str(at(LATER)), "deleted": 0,
         "time_us": 2**64},
        {"actor_did": DAVE, "rkey": "3llike000009d", "subject_uri": A_POST, "subject_did": ALICE,
         "subject_collection": "app.bsky.feed.post", "subject_rkey": "3lpost000001a", "created_at": "yesterday",
         "deleted": 0, "time_us": LATER},
        {"did": DAVE, "rkey": "3lpost000009d", "uri": post_uri(DAVE, "3lpost000009d"), "created_at": str(at(LATER)),
         "text": "\ud800x", "langs": [], "has_embedded_media": 0, "parent_uri": "", "root_uri": "", "deleted": 0,
         "time_us": LATER},
        {"repo": DAVE, "collection": "app.bsky.feed.like", "rkey": "3llike000009d", "operation": "upsert",
         "record_json": "{}", "created_at": str(at(LATER)), "deleted": 0, "time_us": LATER},
    ]
    with_poison = visible()
    for table in VISIBLE:
        query(f"TRUNCATE TABLE {table}")
    write(batch_of(good))
    assert visible() == with_poison
    assert [row[0] for row in with_poison["likes"]] == [BOB, "did:plc:carol000000000000000000000"]


def test_a_refused_row_among_a_thousand_costs_a_few_inserts_not_one_per_row(monkeypatch):
    inserts = []
    insert_rows = type(connections["clickhouse"]).insert_rows

    def counted(connection, table, columns, rows):
        inserts.append((table, len(rows)))
        return insert_rows(connection, table, columns, rows)

    monkeypatch.setattr(type(connections["clickhouse"]), "insert_rows", counted)
    likes = [like(BOB, f"3llike{index:07d}", T0 + index, A_POST) for index in range(1000)]
    write(batch_of(likes, [("likes", BAD_LIKE)]))
    attempts = [size for table, size in inserts if table == "likes"]
    assert attempts[0] == 1001 and len(attempts) <= 1 + 2 * 10
    assert query("SELECT count() FROM likes FINAL") == [(1000,)]
    assert query("SELECT count() FROM firehose_rejects WHERE reason = 'store_refused'") == [(1,)]


def test_a_batch_the_store_refuses_whole_is_dead_lettered_row_by_row_and_passed():
    poison = [("likes", (*BAD_LIKE[:1], f"3llike{index:07d}", *BAD_LIKE[2:])) for index in range(40)]
    writer = write(batch_of([like(BOB, "3llike000001b", T0, A_POST)], poison))
    assert writer.rejects == {"store_refused": 40}
    assert query("SELECT actor_did FROM likes FINAL") == [(BOB,)]
    assert query("SELECT count() FROM firehose_rejects") == [(40,)]
    assert cursor_store().load() == T0


def test_the_cursor_stays_put_while_good_rows_of_a_poisoned_batch_cannot_be_written():
    batch = batch_of(story(), [("likes", BAD_LIKE)])
    query("RENAME TABLE posts TO posts_away")
    try:
        with pytest.raises(WriteFailed, match="rows to posts"):
            write(batch, retry_seconds=(0.01, 0.01), attempts_after_stop=2)
    finally:
        query("RENAME TABLE posts_away TO posts")
    assert cursor_store().load() is None
    assert query("SELECT count() FROM firehose_rejects") == [(0,)]


def test_every_reject_reason_is_exposed_from_the_start_at_zero_or_more():
    from apps.indexer.rows import REASONS
    counted = {reason: REGISTRY.get_sample_value("skyline_indexer_rejects_total", {"reason": reason})
               for reason in REASONS}
    assert all(value is not None and value >= 0 for value in counted.values()), counted
