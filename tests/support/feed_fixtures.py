"""Indexed events and signed service tokens for the feed generator tests."""

import datetime
import time

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from apps.feeds import analytics
from apps.feeds.defaults import create_default_feeds
from apps.feeds.models import Feed
from apps.indexer.rows import COLUMNS

UTC = datetime.timezone.utc
POST_COLUMNS = COLUMNS["posts"]
LIKE_COLUMNS = COLUMNS["likes"]
_clock = iter(range(1, 10**9))


def ago(**delta):
    return datetime.datetime.now(UTC) - datetime.timedelta(**delta)


def post(did, rkey, created_at, reply_to=""):
    """Index a post; returns its at-uri."""
    uri = f"at://{did}/app.bsky.feed.post/{rkey}"
    row = (did, rkey, uri, created_at, "text", ["en"], 0, reply_to, reply_to, 0, next(_clock))
    connections["clickhouse"].insert_rows("posts", POST_COLUMNS, [row])
    return uri


def delete_post(uri):
    did, _, rkey = uri.removeprefix("at://").split("/")
    row = (did, rkey, uri, datetime.datetime.now(UTC), "", [], 0, "", "", 1, next(_clock))
    connections["clickhouse"].insert_rows("posts", POST_COLUMNS, [row])


def like(uri, count, created_at=None, actor="liker"):
    """Index `count` likes of `uri` by distinct accounts; returns their (actor, rkey) keys."""
    did, _, rkey = uri.removeprefix("at://").split("/")
    created_at = created_at or ago(minutes=1)
    keys = [(f"did:plc:{actor}{n}", f"3l{rkey}{n}") for n in range(count)]
    rows = [(actor_did, like_rkey, uri, did, "app.bsky.feed.post", rkey, created_at, 0, next(_clock))
            for actor_did, like_rkey in keys]
    connections["clickhouse"].insert_rows("likes", LIKE_COLUMNS, rows)
    return keys


def unlike(keys):
    """What Jetstream says when likes are undone: the repo and the rkey, nothing else."""
    now = datetime.datetime.now(UTC)
    rows = [(actor_did, rkey, "", "", "", "", now, 1, next(_clock)) for actor_did, rkey in keys]
    connections["clickhouse"].insert_rows("likes", LIKE_COLUMNS, rows)


def hide_account(did, status):
    columns = ["did", "active", "status", "seq", "changed_at", "time_us"]
    row = (did, 0, status, 1, datetime.datetime.now(UTC), next(_clock))
    connections["clickhouse"].insert_rows("account_statuses", columns, [row])


@pytest.fixture
def default_feeds():
    """The feeds of a fresh install (the data migration's rows do not survive the test flushes)."""
    cache.clear()
    create_default_feeds(Feed)
    yield {feed.alias: feed for feed in Feed.objects.all()}
    cache.clear()


@pytest.fixture
def clock(monkeypatch):
    """Moves time forward for the caches and snapshots: `clock.advance(seconds)`."""

    class Clock:
        offset = 0.0

        def advance(self, seconds):
            self.offset += seconds
            if settings.REDIS_URL:
                _age_redis_keys(seconds)

    moved = Clock()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + moved.offset)
    return moved


def _age_redis_keys(seconds):
    """Redis expires keys on its own clock, which the patched time.time does not move: take
    `seconds` off every key's timeout, as the moved clock does for the in-process cache."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter():
        remaining = client.pttl(key)
        if remaining < 0:
            continue  # no timeout
        if remaining <= seconds * 1000:
            client.delete(key)
        else:
            client.pexpire(key, remaining - int(seconds * 1000))


def feed_uri(alias):
    return f"at://{settings.FEED_ACTOR_DID}/app.bsky.feed.generator/{alias}"


def skeleton(client, alias, token=None, **params):
    """The getFeedSkeleton response for the feed `alias`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/xrpc/app.bsky.feed.getFeedSkeleton", {"feed": feed_uri(alias), **params}, headers=headers)


def posts_of(client, alias, token=None, **params):
    response = skeleton(client, alias, token, **params)
    assert response.status_code == 200, response.content
    return [item["post"] for item in response.json()["feed"]]


@pytest.fixture(autouse=True)
def flush_analytics():
    """Write the buffered analytics rows while the test database still exists (autouse: after every test)."""
    yield
    analytics.feed_requests.flush()
    analytics.interactions.flush()
