"""A feed refresh reads its window, not the history: 30 days behind the last day cost at most twice 1 day.

Granules are counted with `EXPLAIN indexes = 1` on the statement each feed runs, first with one day
of posts and likes, then with 29 older days inserted behind it (a part of their own, merges
stopped), then with everything merged into one part. The tables are the project's, copied with
64-row granules so that a few thousand rows a day make many granules. The feeds are the trending
ones, a community feed and a rules feed ordered hot (the like counting of issue 19).

Then `indexer.0008_merge_resorted_tables`, which merges the parts the re-sorting copy leaves (each
spans all of history), changes no feed's answer and keeps tombstones, even one that came first.
"""

import datetime
import importlib
import re

import pytest
from django.core.cache import cache
from django.db import connections

from apps.accounts.models import ActorLabel, Label
from apps.feeds.algorithms import compute, statement
from apps.feeds.models import Feed
from apps.feeds.registry import FeedSpec
from apps.indexer.rows import COLUMNS
from bench.feed_window import granules_read
from tests.support.stores import BOTH_STORES, query
from skyline.atproto.syntax import tid

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

POSTS_A_DAY = 240
LIKES_A_DAY = 960  # 16 likes on every fourth post
AUTHORS = 40
MEMBERS = 4
NOW_US = int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1_000_000)
HOUR_US = 3_600_000_000
TABLES = ("posts", "likes")


def _time(day, index, per_day):
    """The `index`th record of day `day` back from now (day 0 is the last 24 hours).

    Each hour of the day gets its share, aged 10 to 50 minutes past the whole hour: no record
    crosses a window's edge or a whole hour of age (which moves a hot score) while the test runs.
    """
    per_hour = per_day // 24
    hour, place = divmod(index, per_hour)
    return NOW_US - (day * 24 + hour) * HOUR_US - HOUR_US // 6 - place * (2 * HOUR_US // 3) // per_hour


def _datetime(time_us):
    return datetime.datetime.fromtimestamp(time_us / 1_000_000, datetime.timezone.utc)


def _post(day, index):
    time_us = _time(day, index, POSTS_A_DAY)
    return f"did:plc:author{index % AUTHORS:04d}", tid(time_us, index % 1024), time_us


def index_days(days):
    """Posts (a fifth replies, 1% deleted) and likes (1% undone) of `days`, one insert per table."""
    posts, likes = [], []
    for day in days:
        _add_day(day, posts, likes)
    clickhouse = connections["clickhouse"]
    clickhouse.insert_rows("posts", COLUMNS["posts"], posts)
    clickhouse.insert_rows("likes", COLUMNS["likes"], likes)


def _add_day(day, posts, likes):
    for index in range(POSTS_A_DAY):
        did, rkey, time_us = _post(day, index)
        uri = f"at://{did}/app.bsky.feed.post/{rkey}"
        parent = f"at://{did}/app.bsky.feed.post/{_post(day, index + 1)[1]}" if index % 5 == 1 else ""
        posts.append((did, rkey, uri, _datetime(time_us), "text", ["en"], 0, parent, parent, 0, time_us))
        if index % 100 == 3:
            posts.append((did, rkey, uri, _datetime(time_us + 60_000_000), "", [], 0, "", "", 1, time_us + 60_000_000))
    for index in range(LIKES_A_DAY):
        time_us = _time(day, index, LIKES_A_DAY)
        subject_did, subject_rkey, _ = _post(day, index // 16 * 4)
        actor, rkey = f"did:plc:liker{index % 300:04d}", tid(time_us, index % 1024)
        likes.append((actor, rkey, f"at://{subject_did}/app.bsky.feed.post/{subject_rkey}", subject_did,
                      "app.bsky.feed.post", subject_rkey, _datetime(time_us), 0, time_us))
        if index % 100 == 7:
            likes.append((actor, rkey, "", "", "", "", _datetime(time_us + 1_000_000), 1, time_us + 1_000_000))


@pytest.fixture
def small_granules():
    """posts and likes as the migrations made them, but with 64-row granules and merges stopped."""
    for table in TABLES:
        (engine,) = query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = %s",
                          [table])[0]
        small = re.sub(r"index_granularity = \d+", "index_granularity = 64", engine)
        assert small != engine
        query(f"CREATE TABLE {table}_small AS {table} ENGINE = {small}")
        query(f"EXCHANGE TABLES {table} AND {table}_small")
        query(f"SYSTEM STOP MERGES {table}")
    yield
    for table in TABLES:
        query(f"EXCHANGE TABLES {table} AND {table}_small")
        query(f"DROP TABLE {table}_small")


@pytest.fixture
def feeds(default_feeds):
    label = Label.objects.create(name="window")
    ActorLabel.objects.bulk_create(ActorLabel(label=label, did=f"did:plc:author{n:04d}") for n in range(MEMBERS))
    Feed.objects.create(alias="community", kind="label", label=label, display_name="Community",
                        parameters={"hours": 24})
    Feed.objects.create(alias="rules-hot", kind="rules", display_name="Hot", rules={"order": "hot", "hours": 24})
    cache.clear()
    aliases = ["whats-hot", "top-1h", "top-24h", "community", "rules-hot"]
    return {feed.alias: FeedSpec.of(feed) for feed in Feed.objects.filter(alias__in=aliases)}


def merge_all():
    for table in TABLES:
        query(f"SYSTEM START MERGES {table}")
        query(f"OPTIMIZE TABLE {table} FINAL")


def read_by(feeds):
    """{alias: (granules read, the skeleton)} of each feed."""
    return {alias: (sum(granules_read(*statement(spec)).values()), compute(spec)) for alias, spec in feeds.items()}


def test_a_feed_reads_its_window_whatever_the_history_behind_it(feeds, small_granules):
    index_days([0])
    one_day = read_by(feeds)
    assert all(skeleton for _, skeleton in one_day.values()), one_day
    index_days(range(1, 30))
    in_parts = read_by(feeds)
    merge_all()
    merged = read_by(feeds)

    for alias, (granules, skeleton) in one_day.items():
        assert in_parts[alias][1] == skeleton and merged[alias][1] == skeleton
        assert in_parts[alias][0] <= 2 * granules, (alias, granules, in_parts[alias][0])
        assert merged[alias][0] <= 2 * granules, (alias, granules, merged[alias][0])


def test_a_record_whose_key_tells_another_time_is_still_read_in_its_window(feeds, small_granules):
    # Record keys are chosen by clients: a TID from three weeks ago on a post and likes made now.
    index_days(range(30))
    merge_all()
    weeks_ago = NOW_US - 21 * 24 * HOUR_US
    did, rkey = "did:plc:author0000", tid(weeks_ago, 5)
    uri = f"at://{did}/app.bsky.feed.post/{rkey}"
    created = _datetime(NOW_US - HOUR_US // 2)
    connections["clickhouse"].insert_rows("posts", COLUMNS["posts"], [
        (did, rkey, uri, created, "text", ["en"], 0, "", "", 0, NOW_US),
    ])
    likes = [(f"did:plc:late{n:04d}", tid(weeks_ago + n, 6), uri, did, "app.bsky.feed.post", rkey, created, 0, NOW_US)
             for n in range(16)]
    connections["clickhouse"].insert_rows("likes", COLUMNS["likes"], likes)
    shown = {alias: compute(spec) for alias, spec in feeds.items()}
    assert all({"post": uri} in skeleton for skeleton in shown.values()), shown

    undone = [(actor, like_rkey, "", "", "", "", _datetime(NOW_US), 1, NOW_US + 1) for actor, like_rkey, *_ in likes[:6]]
    connections["clickhouse"].insert_rows("likes", COLUMNS["likes"], undone)
    assert {"post": uri} not in compute(feeds["top-1h"])  # 10 likes left, fewer than 11
    connections["clickhouse"].insert_rows("posts", COLUMNS["posts"], [
        (did, rkey, uri, _datetime(NOW_US), "", [], 0, "", "", 1, NOW_US + 1),
    ])
    assert all({"post": uri} not in compute(spec) for spec in feeds.values())


def _active_parts(table):
    return query("SELECT count() FROM system.parts WHERE active AND database = currentDatabase() AND table = %s",
                 [table])[0][0]


def test_merging_the_resorted_copy_keeps_every_answer_and_every_tombstone(feeds):
    merge = importlib.import_module("apps.indexer.migrations.0008_merge_resorted_tables").merge
    # Three days written twice (a replay), as two parts that each span every day, as 0007's copy leaves them.
    for table in TABLES:
        query(f"SYSTEM STOP MERGES {table}")
    index_days(range(3))
    index_days(range(3))
    did, rkey, time_us = "did:plc:author0001", tid(NOW_US - HOUR_US, 9), NOW_US - HOUR_US
    uri = f"at://{did}/app.bsky.feed.post/{rkey}"
    # A tombstone that arrives before its record.
    connections["clickhouse"].insert_rows("posts", COLUMNS["posts"], [
        (did, rkey, "", _datetime(time_us + 1), "", [], 0, "", "", 1, time_us + 1)])
    before = {alias: compute(spec) for alias, spec in feeds.items()}
    assert all(skeleton for skeleton in before.values()), before
    assert all(_active_parts(table) > 1 for table in TABLES)
    for table in TABLES:
        query(f"SYSTEM START MERGES {table}")

    with connections["clickhouse"].schema_editor() as editor:
        merge(None, editor)
        merge(None, editor)  # a rerun leaves the merged tables alone
    assert [_active_parts(table) for table in TABLES] == [1, 1]
    assert {alias: compute(spec) for alias, spec in feeds.items()} == before
    connections["clickhouse"].insert_rows("posts", COLUMNS["posts"], [
        (did, rkey, uri, _datetime(time_us), "text", ["en"], 0, "", "", 0, time_us)])
    assert {alias: compute(spec) for alias, spec in feeds.items()} == before
