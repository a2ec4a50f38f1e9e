"""Feeds chosen by rules: each rule alone and combined, on the truth (edits, deletes, hidden accounts),
their validation, and the viewer filter that gives each viewer the accounts they follow."""

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections

from apps.accounts.models import ActorLabel, Label
from apps.feeds import snapshots
from apps.feeds.models import Feed
from apps.feeds.tasks import refresh_trending_feeds
from tests.support.feed_fixtures import (
    LIKE_COLUMNS,
    POST_COLUMNS,
    ago,
    hide_account,
    like,
    posts_of,
    skeleton,
)
from tests.support.identities import SigningKey, did_plc
from tests.support.stores import BOTH_STORES

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

ALICE, BOB, CAROL, DAVE, ERIN, FRANK, GONE = map(did_plc, ["alice", "bob", "carol", "dave", "erin", "frank", "gone"])
_versions = iter(range(1, 10**9))


def index(did, rkey, text, created_at, langs=("en",), media=0, reply_to="", deleted=0):
    """Index one version of a post; returns its at-uri."""
    uri = f"at://{did}/app.bsky.feed.post/{rkey}"
    row = (did, rkey, uri, created_at, text, list(langs), media, reply_to, reply_to, deleted, next(_versions))
    connections["clickhouse"].insert_rows("posts", POST_COLUMNS, [row])
    return uri


def repost(uri, count):
    did, _, rkey = uri.removeprefix("at://").split("/")
    rows = [(did_plc(f"reposter{n}"), f"3lrp{rkey}{n}", uri, did, "app.bsky.feed.post", rkey, ago(minutes=1), 0,
             next(_versions)) for n in range(count)]
    connections["clickhouse"].insert_rows("reposts", LIKE_COLUMNS, rows)


def follow(actor, *targets, deleted=0):
    rows = [(actor, f"3lf{target.removeprefix('did:plc:')}", target, ago(hours=1), deleted, next(_versions))
            for target in targets]
    connections["clickhouse"].insert_rows(
        "follows", ["actor_did", "rkey", "target_did", "created_at", "deleted", "time_us"], rows)


@pytest.fixture
def posts():
    """Posts of the last day (one out of it), newest first by name, with the truth's traps."""
    found = {
        "a": index(ALICE, "3la", "I love my cat", ago(minutes=10)),
        "b": index(BOB, "3lb", "Black cat at night", ago(minutes=20), media=1),
        "c": index(CAROL, "3lc", "The cat is black", ago(minutes=30)),
        "d": index(DAVE, "3ld", "猫が好きです", ago(minutes=40), langs=["ja"]),
        "e": index(ERIN, "3le", "Nice #Art show today", ago(minutes=50), langs=["pt"], media=1),
        "f": index(FRANK, "3lf", "art is nice", ago(minutes=60)),
        "i": index(FRANK, "3li", "Spoiler: the cat did it", ago(minutes=80)),
        "old": index(ALICE, "3lold", "old cat", ago(hours=30)),
        "future": index(ALICE, "3lfuture", "future cat", ago(hours=-5)),
    }
    found["g"] = index(BOB, "3lg", "cat reply", ago(minutes=70), reply_to=found["a"])
    hidden = index(GONE, "3lhidden", "hidden cat", ago(minutes=5))
    hide_account(GONE, "takendown")
    deleted = index(CAROL, "3ldeleted", "deleted cat", ago(minutes=6))
    index(CAROL, "3ldeleted", "", ago(minutes=6), langs=[], deleted=1)
    index(DAVE, "3ledited", "a cat at first", ago(minutes=7))
    found["edited"] = index(DAVE, "3ledited", "a dog after the edit", ago(minutes=7))
    like(found["a"], 3)
    like(found["b"], 1)
    like(deleted, 5)
    like(hidden, 5)
    repost(found["c"], 2)
    repost(found["b"], 1)
    cats = Label.objects.create(name="cats")
    ActorLabel.objects.create(label=cats, did=ALICE)
    ActorLabel.objects.create(label=cats, did=BOB)
    return found


def rules_feed(alias="rules-test", **rules):
    return Feed.objects.create(alias=alias, kind="rules", display_name="Rules", rules=rules)


def chosen(client, posts, alias="rules-test", token=None):
    by_uri = {uri: name for name, uri in posts.items()}
    return [by_uri.get(uri, uri) for uri in posts_of(client, alias, token)]


@pytest.mark.parametrize("rules, expected", [
    ({}, ["edited", "a", "b", "c", "d", "e", "f", "g", "i"]),
    ({"words": ["cat"]}, ["a", "b", "c", "g", "i"]),
    ({"words": ["black cat"]}, ["b"]),
    ({"words": ["night", "love"]}, ["a", "b"]),
    ({"words": ["猫"]}, ["d"]),
    ({"words": ["dog"]}, ["edited"]),
    ({"hashtags": ["art"]}, ["e"]),
    ({"languages": ["ja", "pt"]}, ["d", "e"]),
    ({"media": "with"}, ["b", "e"]),
    ({"media": "without"}, ["edited", "a", "c", "d", "f", "g", "i"]),
    ({"labels": ["cats"]}, ["a", "b", "g"]),
    ({"accounts": [CAROL, FRANK]}, ["c", "f", "i"]),
    ({"exclude_replies": True}, ["edited", "a", "b", "c", "d", "e", "f", "i"]),
    ({"exclude_words": ["cat", "nice"]}, ["edited", "d"]),
    ({"min_likes": 2}, ["a"]),
    ({"min_reposts": 2}, ["c"]),
    ({"hours": 48, "words": ["cat"]}, ["a", "b", "c", "g", "i", "old"]),
    ({"order": "hot", "min_likes": 1}, ["a", "b"]),
])
def test_each_rule_alone_chooses_exactly_its_posts(client, posts, rules, expected):
    rules_feed(**rules)
    assert chosen(client, posts) == expected


def test_rules_combine_and_words_or_hashtags_match_either(client, posts):
    rules_feed(words=["cat", "show"], hashtags=["art"], languages=["en", "pt"], exclude_replies=True,
               exclude_words=["spoiler"], media="any")
    assert chosen(client, posts) == ["a", "b", "c", "e"]
    rules_feed("narrow", words=["cat"], labels=["cats"], accounts=[CAROL], media="without", exclude_replies=True)
    assert chosen(client, posts, "narrow") == ["a", "c"]


def test_a_hashtag_needs_its_hash(client, posts):
    rules_feed(hashtags=["nice"])
    assert chosen(client, posts) == []


def test_a_label_without_members_shows_nothing(client, posts):
    Label.objects.create(name="empty")
    rules_feed(labels=["empty"])
    assert chosen(client, posts) == []


def test_a_saved_edit_is_served_at_once_and_old_cursors_keep_their_list(client, posts):
    feed = rules_feed(words=["cat"])
    first = skeleton(client, "rules-test", limit=2).json()
    feed.rules = {"languages": ["ja"]}
    feed.save()
    assert chosen(client, posts) == ["d"]
    rest = posts_of(client, "rules-test", cursor=first["cursor"])
    assert rest == [posts["c"], posts["g"], posts["i"]]


@pytest.mark.parametrize("rules, message", [
    ([], "rules: Rules are a JSON object."),
    ({"topic": "cats"}, "rules: Unknown rule 'topic' (allowed: words, hashtags, languages, media, labels, "
                        "accounts, exclude_replies, exclude_words, min_likes, min_reposts, hours, order, "
                        "followed_only)."),
    ({"words": "cat"}, "words: words is a list of strings."),
    ({"words": ["Cat"]}, "words: A word or phrase is lower-case words separated by single spaces: 'Cat'"),
    ({"hashtags": ["#art"]}, "hashtags: A hashtag is lower-case letters, digits and _ (without the #): '#art'"),
    ({"languages": ["english!"]}, "languages: A language is a tag such as en or pt-BR: 'english!'"),
    ({"media": "photos"}, "media: media is one of any, with, without."),
    ({"labels": ["nobody"]}, "labels: No label named 'nobody'."),
    ({"accounts": ["alice.test"]}, "accounts: An account is a DID such as did:plc:…: 'alice.test'"),
    ({"exclude_replies": "yes"}, "exclude_replies: exclude_replies is true or false."),
    ({"min_likes": -1}, "min_likes: min_likes must be a whole number from 0 to 1000000."),
    ({"hours": 73}, "hours: hours must be a whole number from 1 to 72."),
    ({"order": "random"}, "order: order is one of newest, hot."),
])
def test_rules_are_validated_with_clear_messages(rules, message):
    feed = Feed(alias="bad", kind="rules", display_name="Bad", rules=rules)
    with pytest.raises(ValidationError) as raised:
        feed.full_clean()
    assert raised.value.message_dict == {"rules": [message]}


def test_the_viewer_filter_serves_each_viewer_the_accounts_they_follow(client, posts, plc):
    keys = {}
    for name in ("viewer1", "viewer2"):
        keys[name] = SigningKey()
        plc.add(did_plc(name), signing_key=keys[name].multikey)
    follow(did_plc("viewer1"), ALICE, BOB, CAROL, GONE)
    follow(did_plc("viewer1"), BOB, deleted=1)  # then unfollowed
    follow(did_plc("viewer2"), BOB, ERIN)
    rules_feed(words=["cat"], hashtags=["art"], followed_only=True)

    def token(name):
        return keys[name].token(did_plc(name), settings.SERVICE_DID)

    assert chosen(client, posts, token=token("viewer1")) == ["a", "c"]
    assert chosen(client, posts, token=token("viewer2")) == ["b", "e", "g"]
    page = skeleton(client, "rules-test", token("viewer2"), limit=1).json()
    other = skeleton(client, "rules-test", token("viewer1"), limit=1, cursor=page["cursor"])
    assert (other.status_code, other.json()) == (200, {"feed": []})  # a viewer's cursor is no use to another
    anonymous = skeleton(client, "rules-test")
    assert (anonymous.status_code, anonymous.json()) == (401, {
        "error": "AuthenticationRequired",
        "message": "this feed shows posts from the accounts you follow: sign in to see it",
    })


def test_a_viewers_list_is_kept_until_it_expires_or_the_feed_is_edited(client, posts, plc):
    key, viewer = SigningKey(), did_plc("viewer1")
    plc.add(viewer, signing_key=key.multikey)
    follow(viewer, ALICE)
    feed = rules_feed(words=["cat"], followed_only=True)
    token = key.token(viewer, settings.SERVICE_DID)
    assert chosen(client, posts, token=token) == ["a"]
    follow(viewer, CAROL)
    assert chosen(client, posts, token=token) == ["a"]  # the viewer's list, as computed a moment ago
    feed.rules = {"words": ["cat", "black"], "followed_only": True}
    feed.save()
    assert chosen(client, posts, token=token) == ["a", "c"]


def test_the_scheduler_computes_no_unfiltered_list_for_a_feed_of_followed_accounts(posts):
    rules_feed("followed", words=["cat"], followed_only=True)
    rules_feed("everyone", words=["cat"])
    refreshed = refresh_trending_feeds()
    assert "everyone" in refreshed and "followed" not in refreshed
    assert snapshots.latest("everyone")[1] == 5
    assert snapshots.latest("followed") is None
