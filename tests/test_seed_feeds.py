"""`manage.py seed_feeds`: the feeds bsky-experiments served, and feeds that answer without being listed."""

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.accounts.models import Label
from apps.feeds.models import Feed
from tests.support.feed_fixtures import feed_uri, skeleton
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

PINNED = {"post": "at://did:plc:q6gjnaw2blty4crticxkmujt/app.bsky.feed.post/3lzrksmt6jk2b",
          "reason": {"$type": "app.bsky.feed.defs#skeletonReasonPin"}}
RETIRED = ["my-followers-ex", "my-followers", "cv:cat", "cv:dog", "cv:bird", "cl-japanese", "cl-brasil", "wh-ja",
           "wh-ja-txt", "firehose"]


def seed_feeds():
    out = StringIO()
    call_command("seed_feeds", stdout=out)
    return out.getvalue()


def describe(client):
    return client.get("/xrpc/app.bsky.feed.describeFeedGenerator").json()


def test_describe_lists_the_seven_feeds_the_seed_listed(client):
    assert seed_feeds().splitlines()[:3] == ["created whats-hot", "created top-1h", "created top-24h"]
    assert describe(client) == {
        "did": settings.SERVICE_DID,
        "feeds": [{"uri": feed_uri(alias)} for alias in
                  ["whats-hot", "top-1h", "top-24h", "a-mpls", "cl-tqsp", "bangers", "at-bangers"]],
    }


@pytest.mark.parametrize("alias", ["bangers", "at-bangers", *RETIRED])
def test_every_static_alias_of_the_seed_answers_its_pinned_post(client, default_feeds, alias):
    seed_feeds()
    response = skeleton(client, alias)
    assert response.status_code == 200
    assert response.json() == {"feed": [PINNED]}


def test_the_community_feeds_use_the_seed_labels_and_mpls_is_private(client, default_feeds):
    seed_feeds()
    mpls, tqsp = Feed.objects.get(alias="a-mpls"), Feed.objects.get(alias="cl-tqsp")
    assert (mpls.kind, mpls.label.name, mpls.private) == ("label", "mpls", True)
    assert (tqsp.kind, tqsp.label.name, tqsp.private) == ("label", "tqsp", False)
    assert skeleton(client, "a-mpls").json() == {"feed": [
        {"post": f"at://did:plc:wksnvmuo52yo3a32hkxdq4kb/app.bsky.feed.post/{rkey}"}
        for rkey in ("3l3frqadlo32h", "3l3frryudoz2i", "3l3frupeayv2e")
    ]}


def test_running_it_again_creates_nothing_and_keeps_the_operators_changes(default_feeds):
    first = seed_feeds()
    assert first.splitlines()[-1] == "14 feed(s) created"
    Feed.objects.filter(alias="bangers").update(display_name="Bangers!", listed=False)
    assert seed_feeds() == "0 feed(s) created\n"
    assert Feed.objects.filter(alias="bangers").values_list("display_name", "listed").get() == ("Bangers!", False)
    assert sorted(Label.objects.values_list("name", flat=True)) == ["mpls", "tqsp"]


def test_an_unlisted_feed_answers_but_is_not_described(client, default_feeds):
    Feed.objects.create(alias="old-alias", kind="static", display_name="Old", listed=False,
                        pinned_posts=PINNED["post"])
    assert {"uri": feed_uri("old-alias")} not in describe(client)["feeds"]
    assert skeleton(client, "old-alias").json() == {"feed": [PINNED]}
    Feed.objects.filter(alias="old-alias").update(enabled=False)
    Feed.objects.get(alias="old-alias").save()
    assert skeleton(client, "old-alias").status_code == 400

