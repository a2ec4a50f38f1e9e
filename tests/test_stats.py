"""Site statistics: daily counts kept by ClickHouse aggregates as events are indexed, served cached."""

import datetime

import pytest
from django.core.cache import cache
from django.db import connections

from apps.indexer.rows import COLUMNS
from apps.search import stats, tasks
from tests.support.pds import tid
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

UTC = datetime.timezone.utc
TODAY = datetime.datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
DAY1, DAY2, DAY3 = (TODAY - datetime.timedelta(days=days) for days in (2, 1, 0))
LATER = TODAY + datetime.timedelta(hours=1)
ALICE, BOB, CAROL, DAVE, ERIN = (f"did:plc:{name * 24}"[:32] for name in "abcde")
_time_us = iter(range(1_700_000_000_000_000, 1_800_000_000_000_000, 1000))


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def key_at(day):
    return tid(int(day.timestamp() * 1_000_000) + next(_time_us) % 1_000_000)


def insert(table, columns, rows):
    connections["clickhouse"].insert_rows(table, columns, rows)


def post(did, day, deleted=0, rkey=None):
    rkey = rkey or key_at(day)
    row = (
        did,
        rkey,
        f"at://{did}/app.bsky.feed.post/{rkey}",
        day,
        "" if deleted else "hello",
        [],
        0,
        "",
        "",
        deleted,
        next(_time_us),
    )
    insert(
        "posts",
        COLUMNS["posts"],
        [row],
    )
    return rkey


def like(did, day, deleted=0, rkey=None):
    rkey = rkey or key_at(day)
    subject = "" if deleted else f"at://{ERIN}/app.bsky.feed.post/3kabc"
    insert(
        "likes",
        COLUMNS["likes"],
        [
            (
                did,
                rkey,
                subject,
                ERIN if subject else "",
                "app.bsky.feed.post" if subject else "",
                "3kabc" if subject else "",
                day,
                deleted,
                next(_time_us),
            )
        ],
    )
    return rkey


def graph(table, did, day, deleted=0, rkey=None):
    rkey = rkey or key_at(day)
    insert(
        table,
        COLUMNS[table],
        [(did, rkey, "" if deleted else ERIN, day, deleted, next(_time_us))],
    )
    return rkey


def commits(*dids):
    insert(
        "repo_records",
        COLUMNS["repo_records"],
        [(did, "app.bsky.actor.profile", "self", "create", "{}", TODAY, 0, next(_time_us)) for did in dids],
    )


def index_a_few_days():
    post(ALICE, DAY1)
    post(ALICE, DAY1)
    deleted_post = post(BOB, DAY1)
    post(BOB, DAY1)
    post(ALICE, DAY2)
    post(BOB, DAY1, deleted=1, rkey=deleted_post)  # deleted today: comes off DAY1, where it was counted

    like(ALICE, DAY2)
    like(BOB, DAY2)
    undone = like(CAROL, DAY2)
    like(CAROL, LATER, deleted=1, rkey=undone)

    graph("follows", ALICE, DAY3)
    unfollowed = graph("follows", ALICE, DAY3)
    graph("follows", ALICE, LATER, deleted=1, rkey=unfollowed)

    graph("blocks", DAVE, DAY1)
    graph("blocks", DAVE, DAY2, rkey="not-a-tid")  # no TID: counted on its createdAt day
    graph("blocks", DAVE, LATER, deleted=1, rkey="self")  # a tombstone with no TID cannot be placed
    commits(ALICE, BOB, CAROL, DAVE, ALICE)


def day(date, **counts):
    return {"date": date, **{name: 0 for name in stats.EMPTY_DAY}, **counts}


EXPECTED_DAYS = [
    day(DAY3.date(), num_follows=1, num_followers=1),
    day(DAY2.date(), num_posts=1, num_posters=1, num_likes=2, num_likers=3, num_blocks=1, num_blockers=1),
    day(DAY1.date(), num_posts=3, num_posters=2, num_blocks=1, num_blockers=1),
]


def test_daily_counts_are_exact_and_deletes_come_off_the_day_they_were_counted():
    index_a_few_days()
    assert stats.daily_stats(3) == EXPECTED_DAYS
    assert stats.daily_stats(5)[3:] == [
        day(DAY1.date() - datetime.timedelta(days=1)),
        day(DAY1.date() - datetime.timedelta(days=2)),
    ]


def test_deletes_of_records_older_than_the_index_never_make_a_day_negative(client):
    index_a_few_days()
    long_ago = datetime.datetime(2023, 6, 1, 12, tzinfo=datetime.timezone.utc)
    like(ERIN, long_ago, deleted=1)  # an unlike of a like from before indexing began
    like(ERIN, DAY1, deleted=1, rkey=key_at(DAY1))  # an unlike of a day-1 like that was never indexed
    body = client.get("/api/stats").json()
    assert "2023-06-01" not in [entry["date"] for entry in body["daily_data"]]
    assert all(value >= 0 for entry in body["daily_data"] for key, value in entry.items() if key != "date")
    assert body["total_likes"] >= 0


def test_the_stats_endpoint_has_the_seed_shape_and_totals(client):
    index_a_few_days()
    response = client.get("/api/stats")
    assert response.status_code == 200
    body = response.json()
    assert body.pop("updated_at").endswith("Z")
    assert body == {
        "total_users": 4,
        "total_posts": 4,
        "total_follows": 1,
        "total_likes": 2,
        "daily_data": [{**entry, "date": entry["date"].isoformat()} for entry in EXPECTED_DAYS],
    }
    assert client.get("/stats").json()["daily_data"] == body["daily_data"]


def test_stats_are_served_from_the_cache_until_the_next_refresh(client):
    post(ALICE, DAY1)
    assert client.get("/api/stats").json()["total_posts"] == 1  # computed on demand before any refresh
    post(BOB, DAY1)
    assert client.get("/api/stats").json()["total_posts"] == 1
    assert tasks.refresh_stats() == {"total_users": 0, "total_posts": 2, "total_follows": 0, "total_likes": 0}
    assert client.get("/stats").json()["total_posts"] == 2


def test_a_refresh_already_running_elsewhere_is_not_run_twice():
    cache.add(tasks.STATS_LOCK, "another worker", 60)
    assert tasks.refresh_stats() is None
    assert cache.get(stats.CACHE_KEY) is None


def test_an_empty_index_gives_zeros_not_an_error(client):
    response = client.get("/api/stats")
    assert response.status_code == 200
    assert {key: value for key, value in response.json().items() if key != "updated_at"} == {
        "total_users": 0,
        "total_posts": 0,
        "total_follows": 0,
        "total_likes": 0,
        "daily_data": [],
    }


def test_a_like_undone_within_one_batch_leaves_its_day_as_it_was():
    """Both versions reach the daily view: +1 and -1, not a lone -1 for a like the day never counted."""
    like(ALICE, DAY2)
    rkey = key_at(DAY2)
    created = (CAROL, rkey, f"at://{ERIN}/app.bsky.feed.post/3kabc", ERIN, "app.bsky.feed.post", "3kabc", DAY2, 0,
               next(_time_us))
    undone = (CAROL, rkey, "", "", "", "", LATER, 1, next(_time_us))
    insert("likes", COLUMNS["likes"], [created, undone])  # one batch, as the writer sends it
    assert stats.daily_stats(3)[1] == day(DAY2.date(), num_likes=1, num_likers=2)


def test_the_views_read_every_rkey_on_the_day_the_first_views_did():
    # 0006 decodes a TID's day in one call; 0002 spelt out its 11 characters. Same day for any rkey:
    # TIDs across the whole range, clock ids, and strings that only look like TIDs, or do not at all.
    import importlib
    import random

    first = importlib.import_module("apps.search.migrations.0002_daily_stats_views_and_post_text_index")
    now = importlib.import_module("apps.search.migrations.0006_record_day_decoded_in_one_call")
    chance = random.Random(6)
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    rkeys = [tid(micros, clock) for micros in (0, 1, 2**53 - 1, 1_700_000_000_000_000, 1_783_000_000_123_456)
             for clock in (0, 1, 1023)]
    rkeys += [tid(chance.randrange(2**53), chance.randrange(1024)) for _ in range(2000)]
    rkeys += ["".join(chance.choice(alphabet) for _ in range(13)) for _ in range(500)]  # first char any
    rkeys += ["self", "not-a-tid", "3lbqaaaaaaa2", "3lbqaaaaaaa222", "3LBQAAAAAAA22", "kzzzzzzzzzzzz",
              "jzzzzzzzzzzzz", "2222222222222", "3lbq-aaaaaa22", ""]
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(
            f"SELECT countIf(({first.RECORD_DAY}) != ({now.RECORD_DAY})), count(), "
            f"countIf(match(rkey, {first._TID})) "
            "FROM (SELECT arrayJoin(%(rkeys)s) AS rkey, toDateTime64('2025-01-02 03:04:05', 6, 'UTC') AS created_at)",
            {"rkeys": rkeys},
        )
        differing, compared, tids = cursor.fetchone()
    assert (differing, compared) == (0, len(rkeys))
    assert tids > 2000  # most of them took the TID branch
