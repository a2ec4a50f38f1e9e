"""The XRPC surface: the did:web document, describeFeedGenerator, getFeedSkeleton's parameters and
paging, sendInteractions, and the request analytics."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from apps.feeds import analytics
from apps.feeds.analytics import RowBuffer
from apps.feeds.models import Feed
from apps.feeds.tasks import prune_request_analytics, refresh_trending_feeds
from tests.support.feed_fixtures import ago, feed_uri, like, post, posts_of, skeleton
from tests.support.identities import SigningKey, did_plc
from tests.support.stores import BOTH_STORES, query

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)
ROOT = Path(__file__).resolve().parent.parent


def test_the_did_document_names_the_feed_generator_service(client):
    response = client.get("/.well-known/did.json")
    assert response.status_code == 200
    assert response.json() == {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": settings.SERVICE_DID,
        "service": [{"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": settings.SERVICE_ENDPOINT}],
    }


def test_describe_lists_the_enabled_feeds_in_order(client, default_feeds):
    Feed.objects.filter(alias="top-1h").update(enabled=False)
    Feed.objects.create(alias="bangers", kind="static", display_name="Bangers",
                        pinned_posts="at://did:plc:x/app.bsky.feed.post/3k")
    assert client.get("/xrpc/app.bsky.feed.describeFeedGenerator").json() == {
        "did": settings.SERVICE_DID,
        "feeds": [{"uri": feed_uri("whats-hot")}, {"uri": feed_uri("top-24h")}, {"uri": feed_uri("bangers")}],
    }


def test_a_fresh_install_serves_the_trending_feeds(tmp_path):
    env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path)}
    manage = [sys.executable, "manage.py"]
    subprocess.run(manage + ["migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=180)
    listing = subprocess.run(
        manage + ["shell", "--no-imports", "-c",
                  "from apps.feeds.models import Feed\n"
                  "print(list(Feed.objects.filter(enabled=True).values_list('alias', 'kind')))"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=180,
    )
    assert listing.stdout.strip() == "[('whats-hot', 'hot'), ('top-1h', 'top'), ('top-24h', 'top')]"


def error_of(response):
    return response.status_code, response.json()["error"]


@pytest.mark.parametrize("params, expected", [
    ({}, (400, "InvalidRequest")),
    ({"limit": "0"}, (400, "InvalidRequest")),
    ({"limit": "-5"}, (400, "InvalidRequest")),
    ({"limit": "101"}, (400, "InvalidRequest")),
    ({"limit": "ten"}, (400, "InvalidRequest")),
    ({"cursor": "garbage"}, (400, "InvalidRequest")),
    ({"cursor": "0123456789ab:99999"}, None),  # well formed, unknown snapshot: the end of the feed
])
def test_bad_parameters_are_invalid_requests(client, default_feeds, params, expected):
    query_params = {"feed": feed_uri("top-1h"), **params} if params != {} else {}
    response = client.get("/xrpc/app.bsky.feed.getFeedSkeleton", query_params)
    if expected is None:
        assert (response.status_code, response.json()) == (200, {"feed": []})
    else:
        assert error_of(response) == expected
        assert response.json()["message"]


@pytest.mark.parametrize("feed, expected", [
    ("not an at-uri", "InvalidRequest"),
    ("at://did:plc:someoneelse/app.bsky.feed.generator/whats-hot", "UnknownFeed"),
    (f"at://{settings.FEED_ACTOR_DID}/app.bsky.feed.post/whats-hot", "UnknownFeed"),
    (f"at://{settings.FEED_ACTOR_DID}/app.bsky.feed.generator/no-such-feed", "UnknownFeed"),
    (f"at://{settings.FEED_ACTOR_DID}/app.bsky.feed.generator/top-1h?x", "InvalidRequest"),
])
def test_feeds_this_generator_does_not_serve_are_refused(client, default_feeds, feed, expected):
    response = client.get("/xrpc/app.bsky.feed.getFeedSkeleton", {"feed": feed})
    assert error_of(response) == (400, expected)


def test_a_disabled_feed_is_unknown(client, default_feeds):
    Feed.objects.filter(alias="top-1h").update(enabled=False)
    Feed.objects.get(alias="top-1h").save()
    assert error_of(skeleton(client, "top-1h")) == (400, "UnknownFeed")


def test_a_cursor_past_the_end_is_invalid(client, default_feeds):
    like(post("did:plc:a", "3ka", ago(minutes=5)), 11)
    cursor = skeleton(client, "top-1h", limit=1).json()
    assert "cursor" not in cursor
    like(post("did:plc:b", "3kb", ago(minutes=5)), 11)
    Feed.objects.get(alias="top-1h").save()
    first = skeleton(client, "top-1h", limit=1).json()
    snapshot = first["cursor"].split(":")[0]
    assert error_of(skeleton(client, "top-1h", cursor=f"{snapshot}:3")) == (400, "InvalidRequest")


def seed_top(count):
    """`count` posts in top-1h, ranked by their index (post 0 has the most likes)."""
    uris = [post("did:plc:a", f"3kp{n:02d}", ago(minutes=30)) for n in range(count)]
    for n, uri in enumerate(uris):
        like(uri, 40 - n)
    return uris


def test_pages_never_exceed_the_limit_and_the_last_has_no_cursor(client, default_feeds):
    uris = seed_top(7)
    seen, cursor, cursors = [], None, []
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = skeleton(client, "top-1h", **params).json()
        assert len(body["feed"]) <= 3
        seen += [item["post"] for item in body["feed"]]
        if "cursor" not in body:
            break
        assert body["cursor"] != cursor
        cursor = body["cursor"]
        cursors.append(cursor)
    assert seen == uris
    assert len(cursors) == 2
    assert posts_of(client, "top-1h") == uris  # the default limit is 50


def test_paging_across_a_refresh_neither_repeats_nor_skips(client, default_feeds, clock):
    uris = seed_top(7)
    first = skeleton(client, "top-1h", limit=3).json()
    # The list changes: a new post goes to the top and the last one overtakes the others.
    newcomer = post("did:plc:b", "3knew", ago(minutes=1))
    like(newcomer, 100)
    like(uris[6], 60, actor="fan")
    clock.advance(61)
    assert "top-1h" in refresh_trending_feeds()
    second = skeleton(client, "top-1h", limit=3, cursor=first["cursor"]).json()
    third = skeleton(client, "top-1h", limit=3, cursor=second["cursor"]).json()
    paged = [item["post"] for item in first["feed"] + second["feed"] + third["feed"]]
    assert paged == uris
    assert "cursor" not in third
    assert posts_of(client, "top-1h", limit=3) == [newcomer, uris[6], uris[0]]


def test_each_trending_feed_is_refreshed_on_its_own_interval(default_feeds, clock):
    assert refresh_trending_feeds() == ["whats-hot", "top-1h", "top-24h"]
    assert refresh_trending_feeds() == []
    clock.advance(60)
    assert refresh_trending_feeds() == ["whats-hot", "top-1h"]
    clock.advance(540)
    assert refresh_trending_feeds() == ["whats-hot", "top-1h", "top-24h"]


def test_a_feed_is_computed_on_demand_when_no_list_exists_yet(client, default_feeds, clock):
    uri = post("did:plc:a", "3ka", ago(minutes=5))
    like(uri, 12)
    assert posts_of(client, "top-1h") == [uri]
    later = post("did:plc:a", "3kb", ago(minutes=4))
    like(later, 20)
    assert posts_of(client, "top-1h") == [uri]  # served from the list until it is refreshed
    clock.advance(121)  # no scheduler ran: the list has expired, so the request recomputes it
    assert posts_of(client, "top-1h") == [later, uri]


def test_requests_are_recorded_for_analytics(client, default_feeds, plc):
    key = SigningKey()
    viewer = did_plc("viewer")
    plc.add(viewer, signing_key=key.multikey)
    seed_top(3)
    cursor = skeleton(client, "top-1h", limit=2).json()["cursor"]
    skeleton(client, "top-1h", token=key.token(viewer, settings.SERVICE_DID), limit=2, cursor=cursor)
    analytics.feed_requests.flush()
    rows = query("SELECT feed_name, user_did, limit_requested, has_cursor, latency_us > 0 "
                 "FROM feed_request_analytics ORDER BY requested_at")
    assert rows == [("top-1h", "", 2, 0, 1), ("top-1h", viewer, 2, 1, 1)]


def test_the_buffer_is_written_by_its_own_thread_once_a_batch_is_full(default_feeds):
    buffer = RowBuffer("feed_request_analytics", analytics.feed_requests.columns, batch_size=2, interval=60)
    now = ago(seconds=0)
    buffer.add(("whats-hot", "", 50, 0, 100, now, 1))
    buffer.add(("whats-hot", "", 50, 0, 100, now, 2))
    deadline = time.monotonic() + 10
    while query("SELECT count() FROM feed_request_analytics") != [(2,)]:
        assert time.monotonic() < deadline, "the full batch was not written"
        time.sleep(0.02)


def test_old_analytics_are_pruned(default_feeds):
    rows = [("whats-hot", "", 50, 0, 100, ago(days=days), days) for days in (1, 89, 91, 400)]
    connections["clickhouse"].insert_rows("feed_request_analytics", analytics.feed_requests.columns, rows)
    prune_request_analytics()
    assert query("SELECT time_us FROM feed_request_analytics ORDER BY time_us") == [(1,), (89,)]


def test_interactions_are_accepted_and_stored(client, default_feeds, plc):
    key = SigningKey("ES256")
    viewer = did_plc("viewer")
    plc.add(viewer, signing_key=key.multikey)
    body = {"feed": feed_uri("whats-hot"), "interactions": [
        {"item": "at://did:plc:a/app.bsky.feed.post/3ka", "event": "app.bsky.feed.defs#requestLess",
         "feedContext": "ctx", "reqId": "r1"},
        {"item": "at://did:plc:a/app.bsky.feed.post/3kb", "event": "app.bsky.feed.defs#interactionSeen"},
    ]}
    token = key.token(viewer, settings.SERVICE_DID, lxm="app.bsky.feed.sendInteractions")
    response = client.post("/xrpc/app.bsky.feed.sendInteractions", json.dumps(body),
                           content_type="application/json", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()) == (200, {})
    analytics.interactions.flush()
    assert query("SELECT user_did, feed_uri, item_uri, event, feed_context, req_id FROM feed_interactions "
                 "ORDER BY item_uri") == [
        (viewer, feed_uri("whats-hot"), "at://did:plc:a/app.bsky.feed.post/3ka", "app.bsky.feed.defs#requestLess",
         "ctx", "r1"),
        (viewer, feed_uri("whats-hot"), "at://did:plc:a/app.bsky.feed.post/3kb",
         "app.bsky.feed.defs#interactionSeen", "", ""),
    ]


def test_interactions_need_a_token_and_a_valid_body(client, default_feeds, plc):
    send = "/xrpc/app.bsky.feed.sendInteractions"
    anonymous = client.post(send, json.dumps({"interactions": []}), content_type="application/json")
    assert error_of(anonymous) == (401, "AuthenticationRequired")
    assert error_of(client.post(send, "{not json", content_type="application/json")) == (400, "InvalidRequest")
    assert error_of(client.post(send, json.dumps({"interactions": "x"}), content_type="application/json")) == (
        400, "InvalidRequest")
