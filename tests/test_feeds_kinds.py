"""Each kind of feed on indexed events: what it ranks, what it leaves out, and its parameters."""

import time

import pytest

from apps.accounts.models import ActorLabel, Label
from apps.feeds.models import PIN, Feed
from apps.feeds.tasks import refresh_trending_feeds
from tests.support.feed_fixtures import ago, delete_post, hide_account, like, post, posts_of, skeleton, unlike
from tests.support.stores import BOTH_STORES
from skyline.atproto.syntax import tid

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)


def hot_score(likes, hours):
    return (likes - 1) / (hours + 2) ** 1.8


def test_whats_hot_ranks_top_level_posts_by_likes_decayed_by_whole_hours(client, default_feeds):
    fresh = post("did:plc:a", "3kfresh", ago(minutes=30))        # 19 / 2^1.8  = 5.45
    older = post("did:plc:b", "3kolder", ago(hours=1, minutes=50))  # 29 / 3^1.8 = 4.02
    oldest = post("did:plc:c", "3koldest", ago(hours=5, minutes=10))  # 59 / 7^1.8 = 1.79
    like(fresh, 20)
    like(older, 30)
    like(oldest, 60)
    assert hot_score(20, 0) > hot_score(30, 1) > hot_score(60, 5)
    assert posts_of(client, "whats-hot") == [fresh, older, oldest]


def test_whats_hot_leaves_out_what_the_thresholds_and_the_truth_exclude(client, default_feeds):
    enough = post("did:plc:a", "3kenough", ago(hours=2))
    like(enough, 15)
    like(post("did:plc:a", "3kfew", ago(hours=2)), 14)
    like(post("did:plc:a", "3kyoung", ago(minutes=3)), 50)
    like(post("did:plc:a", "3kstale", ago(hours=25)), 50)
    like(post("did:plc:a", "3kreply", ago(hours=1), reply_to=enough), 50)
    deleted = post("did:plc:a", "3kdeleted", ago(hours=1))
    like(deleted, 50)
    delete_post(deleted)
    undone = post("did:plc:a", "3kundone", ago(hours=1))
    keys = like(undone, 16)
    unlike(keys[:2])  # 14 left
    hidden = post("did:plc:gone", "3khidden", ago(hours=1))
    like(hidden, 50)
    hide_account("did:plc:gone", "takendown")
    assert posts_of(client, "whats-hot") == [enough]


def test_hot_thresholds_are_parameters(client, default_feeds):
    few = post("did:plc:a", "3kfew", ago(hours=2))
    like(few, 5)
    young = post("did:plc:a", "3kyoung", ago(minutes=3))
    like(young, 5)
    Feed.objects.filter(alias="whats-hot").update(parameters={"min_likes": 5, "min_age_minutes": 1})
    Feed.objects.get(alias="whats-hot").save()  # a save is what the admin does: it takes effect at once
    assert posts_of(client, "whats-hot") == [young, few]


def test_top_feeds_rank_the_window_by_likes_more_than_ten(client, default_feeds):
    most = post("did:plc:a", "3kmost", ago(minutes=20))
    second = post("did:plc:b", "3ksecond", ago(minutes=40), reply_to=most)  # replies count here
    eleven = post("did:plc:c", "3keleven", ago(minutes=50))
    ten = post("did:plc:d", "3kten", ago(minutes=10))
    earlier = post("did:plc:e", "3kearlier", ago(hours=3))
    future = post("did:plc:f", "3kfuture", ago(hours=-24 * 365))  # dated a year ahead: never "in the window"
    like(future, 50)
    like(most, 30)
    like(second, 20)
    like(eleven, 11)
    like(ten, 10)
    like(earlier, 40)
    assert posts_of(client, "top-1h") == [most, second, eleven]
    assert posts_of(client, "top-24h") == [earlier, most, second, eleven]


def test_top_feeds_do_not_count_undone_likes_or_deleted_posts(client, default_feeds):
    liked = post("did:plc:a", "3kliked", ago(minutes=20))
    unliked = post("did:plc:b", "3kunliked", ago(minutes=20))
    deleted = post("did:plc:c", "3kdeleted", ago(minutes=20))
    like(liked, 12)
    unlike(like(unliked, 40)[:30])
    like(deleted, 50)
    delete_post(deleted)
    assert posts_of(client, "top-1h") == [liked]


def test_a_post_counts_in_its_window_whatever_time_its_record_key_tells(client, default_feeds):
    # Posts and likes are sorted by record key; clients choose keys, and createdAt is what counts.
    year_ago = tid(int((time.time() - 365 * 86400) * 1_000_000), 0)
    liked = post("did:plc:a", year_ago, ago(minutes=20))
    custom = post("did:plc:b", "custom-key", ago(minutes=30))
    like(liked, 12)
    like(custom, 11)
    assert posts_of(client, "top-1h") == [liked, custom]


@pytest.fixture
def community(db):
    label = Label.objects.create(name="mpls")
    ActorLabel.objects.create(label=label, did="did:plc:member")
    feed = Feed.objects.create(alias="a-mpls", kind="label", label=label, display_name="Minneapolis")
    return feed


def test_a_community_feed_shows_its_members_top_level_posts_newest_first(client, community):
    older = post("did:plc:member", "3kolder", ago(hours=5))
    newer = post("did:plc:member", "3knewer", ago(minutes=5))
    post("did:plc:member", "3kreply", ago(minutes=1), reply_to=older)
    post("did:plc:member", "3kfuture", ago(minutes=-90))
    post("did:plc:outsider", "3koutsider", ago(minutes=2))
    delete_post(post("did:plc:member", "3kdeleted", ago(minutes=3)))
    assert posts_of(client, "a-mpls") == [newer, older]


def test_label_changes_reach_a_community_feed_within_its_refresh_interval(client, community, clock):
    mine = post("did:plc:member", "3kmine", ago(minutes=10))
    joiner = post("did:plc:joiner", "3kjoiner", ago(minutes=5))
    assert posts_of(client, "a-mpls") == [mine]
    ActorLabel.objects.create(label=community.label, did="did:plc:joiner")
    ActorLabel.objects.filter(did="did:plc:member").delete()
    assert posts_of(client, "a-mpls") == [mine]  # cached until the interval is up
    clock.advance(61)
    assert refresh_trending_feeds() == ["a-mpls"]
    assert posts_of(client, "a-mpls") == [joiner]


def test_a_static_feed_serves_its_posts_pinned(client, db):
    uris = [f"at://did:plc:pinner/app.bsky.feed.post/3kpin{n}" for n in range(3)]
    Feed.objects.create(alias="bangers", kind="static", display_name="Bangers", pinned_posts="\n".join(uris))
    first = skeleton(client, "bangers", limit=2).json()
    assert first["feed"] == [{"post": uris[0], "reason": PIN}, {"post": uris[1], "reason": PIN}]
    rest = skeleton(client, "bangers", limit=2, cursor=first["cursor"]).json()
    assert rest == {"feed": [{"post": uris[2], "reason": PIN}]}
