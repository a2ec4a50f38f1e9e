"""A delete tombstone (did + collection + rkey only) replaces the row it deletes; replays change nothing."""

import datetime

import pytest
from django.db import connections

from apps.indexer.models import Follow, Like, Post
from tests.support.stores import BOTH_STORES, query
from apps.indexer.rows import COLUMNS

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
POST_URI = "at://did:plc:author/app.bsky.feed.post/3kpost"
LIKE_COLUMNS = COLUMNS["likes"]
POST_COLUMNS = COLUMNS["posts"]


def insert(table, columns, rows):
    connections["clickhouse"].insert_rows(table, columns, rows)


def like(actor, rkey, time_us, created_at=NOW):
    return (actor, rkey, POST_URI, "did:plc:author", "app.bsky.feed.post", "3kpost", created_at, 0, time_us)


def unlike(actor, rkey, time_us, created_at):
    # What a Jetstream delete gives us: the repo and the rkey, nothing about the subject.
    return (actor, rkey, "", "", "", "", created_at, 1, time_us)


def test_an_unlike_removes_the_like_from_every_count_even_months_later():
    insert("likes", LIKE_COLUMNS, [like("did:plc:a", "3la", 10), like("did:plc:b", "3lb", 11)])
    insert("likes", LIKE_COLUMNS, [unlike("did:plc:a", "3la", 20, NOW + datetime.timedelta(days=45))])
    assert Like.objects.settings(final=1).count() == 1
    assert query("SELECT subject_uri, like_count FROM post_like_counts(hours=24)") == [(POST_URI, 1)]


def test_a_deleted_post_leaves_the_recent_posts():
    post_row = ("did:plc:author", "3kpost", POST_URI, NOW, "hi", ["en"], 0, "", "", 0, 10)
    insert("posts", POST_COLUMNS, [post_row])
    assert query("SELECT uri FROM recent_posts") == [(POST_URI,)]
    tombstone = ("did:plc:author", "3kpost", POST_URI, NOW + datetime.timedelta(days=40), "", [], 0, "", "", 1, 20)
    insert("posts", POST_COLUMNS, [tombstone])
    assert query("SELECT uri FROM recent_posts") == []
    assert Post.objects.settings(final=1).count() == 0


def test_an_edited_post_shows_its_new_text():
    insert("posts", POST_COLUMNS, [("did:plc:author", "3kpost", POST_URI, NOW, "tpyo", ["en"], 0, "", "", 0, 10)])
    insert("posts", POST_COLUMNS, [("did:plc:author", "3kpost", POST_URI, NOW, "typo", ["en"], 0, "", "", 0, 15)])
    assert query("SELECT text FROM recent_posts") == [("typo",)]


def test_an_unfollow_collapses_with_its_follow():
    columns = COLUMNS["follows"]
    insert("follows", columns, [("did:plc:a", "3lf", "did:plc:b", NOW, 0, 1)])
    insert("follows", columns, [("did:plc:a", "3lf", "", NOW + datetime.timedelta(days=90), 1, 2)])
    assert Follow.objects.settings(final=1).count() == 0


def test_replaying_the_same_events_twice_leaves_the_same_rows_visible():
    events = [like("did:plc:a", "3la", 10), like("did:plc:b", "3lb", 11), like("did:plc:c", "3lc", 12)]
    undo = [unlike("did:plc:b", "3lb", 30, NOW)]
    insert("likes", LIKE_COLUMNS, events)
    insert("likes", LIKE_COLUMNS, undo)
    first = query("SELECT actor_did, rkey FROM likes FINAL ORDER BY actor_did")
    insert("likes", LIKE_COLUMNS, events)
    insert("likes", LIKE_COLUMNS, undo)
    assert query("SELECT actor_did, rkey FROM likes FINAL ORDER BY actor_did") == first
    assert first == [("did:plc:a", "3la"), ("did:plc:c", "3lc")]
    # A late re-delivery of the like itself, older than the tombstone, does not bring it back.
    insert("likes", LIKE_COLUMNS, [like("did:plc:b", "3lb", 11)])
    assert query("SELECT count() FROM likes FINAL") == [(2,)]


def test_a_tombstone_that_arrives_before_its_record_still_deletes_it():
    # A replay or a backfill can bring a record after its delete: the newer time_us wins.
    insert("likes", LIKE_COLUMNS, [unlike("did:plc:a", "3la", 20, NOW)])
    insert("posts", POST_COLUMNS, [("did:plc:author", "3kpost", POST_URI, NOW, "", [], 0, "", "", 1, 20)])
    insert("likes", LIKE_COLUMNS, [like("did:plc:a", "3la", 10), like("did:plc:b", "3lb", 11)])
    insert("posts", POST_COLUMNS, [("did:plc:author", "3kpost", POST_URI, NOW, "hi", ["en"], 0, "", "", 0, 10)])
    assert query("SELECT subject_uri, like_count FROM post_like_counts(hours=24)") == [(POST_URI, 1)]
    assert query("SELECT uri FROM recent_posts") == []
    assert query("SELECT actor_did FROM likes FINAL") == [("did:plc:b",)]


def test_a_delete_of_a_record_older_than_the_history_kept_shows_nothing():
    insert("likes", LIKE_COLUMNS, [like("did:plc:b", "3lb", 11)])
    insert("likes", LIKE_COLUMNS, [unlike("did:plc:old", "3jzfcijpj2z2a", 20, NOW)])
    insert("posts", POST_COLUMNS, [("did:plc:old", "3jzfcijpj2z2a", "at://did:plc:old/app.bsky.feed.post/3jzfcijpj2z2a",
                                    NOW, "", [], 0, "", "", 1, 21)])
    assert query("SELECT actor_did FROM likes FINAL") == [("did:plc:b",)]
    assert query("SELECT subject_uri, like_count FROM post_like_counts(hours=24)") == [(POST_URI, 1)]
    assert query("SELECT count() FROM recent_posts") == [(0,)]


def test_records_whose_keys_are_not_tids_collapse_with_their_tombstones():
    insert("likes", LIKE_COLUMNS, [like("did:plc:a", "self", 10), like("did:plc:b", "custom-key", 11)])
    insert("likes", LIKE_COLUMNS, [unlike("did:plc:a", "self", 20, NOW + datetime.timedelta(days=3))])
    assert query("SELECT actor_did, rkey FROM likes FINAL") == [("did:plc:b", "custom-key")]
    assert query("SELECT subject_uri, like_count FROM post_like_counts(hours=24)") == [(POST_URI, 1)]
