"""Feeds in the admin: each feed's post count and last computation, and its first page as people see it."""

import datetime
import re

import pytest
from django.db import connections

from apps.feeds import snapshots
from apps.feeds.models import Feed
from apps.feeds.registry import FeedSpec
from tests.support.feed_fixtures import POST_COLUMNS, ago, like
from tests.support.identities import did_plc
from tests.support.stores import BOTH_STORES

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

LIST_URL = "/admin/feeds/feed/"
ALICE, BOB = did_plc("alice"), did_plc("bob")


def indexed_post(did, rkey, text, created_at):
    uri = f"at://{did}/app.bsky.feed.post/{rkey}"
    connections["clickhouse"].insert_rows(
        "posts", POST_COLUMNS, [(did, rkey, uri, created_at, text, ["en"], 0, "", "", 0, 1)])
    return uri


def visible_text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


@pytest.fixture
def top():
    Feed.objects.all().delete()
    return Feed.objects.create(alias="top-test", kind="top", display_name="Top", parameters={"min_likes": 1})


def test_the_feed_list_shows_post_counts_and_last_computation(admin_client, top):
    Feed.objects.create(alias="pins", kind="static", display_name="Pins")
    first, second = ago(minutes=30), ago(minutes=20)
    like(indexed_post(ALICE, "3lpost0000001", "first", first), 2)
    like(indexed_post(BOB, "3lpost0000002", "second", second), 1)
    snapshots.refresh(FeedSpec.of(top), force=True)
    rows = {row.group(1): row.group(2) for row in re.finditer(
        r'<th class="field-alias"><a href="[^"]+">([^<]+)</a></th>(.*?)</tr>', admin_client.get(LIST_URL).text)}
    top_row = re.search(r'<td class="field-post_count">(\d+)</td><td class="field-last_computed">([^<]+)</td>',
                        rows["top-test"])
    assert top_row.group(1) == "2"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(0\xa0minutes ago\)", top_row.group(2))
    assert ('<td class="field-post_count">–</td><td class="field-last_computed">not yet (at its first request '
            'or the next scheduled refresh)</td>') in rows["pins"]


def test_a_feeds_change_page_previews_its_first_page_as_people_see_it(admin_client, top):
    now = datetime.datetime.now(datetime.timezone.utc)
    connections["clickhouse"].insert_rows("identities", ["did", "seq", "changed_at", "time_us", "handle"],
                                          [(ALICE, 1, now, 10, "alice.test")])
    connections["clickhouse"].insert_rows(
        "profiles", ["did", "rkey", "display_name", "description", "avatar_cid", "banner_cid", "created_at",
                     "deleted", "time_us"],
        [(ALICE, "self", "Alice", "", "", "", now, 0, 10)],
    )
    posted = (now - datetime.timedelta(minutes=17)).replace(second=0, microsecond=0)  # within the top feed's hour
    like(indexed_post(ALICE, "3lpost0000001", "Hello <Minneapolis>", posted), 3)
    like(indexed_post(BOB, "3lpost0000002", "second best", posted), 1)
    page = admin_client.get(f"{LIST_URL}{top.pk}/change/").text
    preview = re.search(r'<div class="feed-preview">(.*?)</div>\s*</div>', page, re.S).group(1)
    rows = [visible_text(row) for row in re.findall(r"<tr>(.*?)</tr>", preview, re.S)[1:]]
    when = f"{posted:%Y-%m-%d %H:%M} UTC"
    ago_text = r"1[78] minutes ago"
    assert len(rows) == 2
    assert re.fullmatch(rf"Alice @alice\.test Hello &lt;Minneapolis&gt; view {when} {ago_text} 3", rows[0]), rows[0]
    assert re.fullmatch(rf"{BOB} second best view {when} {ago_text} 1", rows[1]), rows[1]
    assert f'href="https://bsky.app/profile/{ALICE}/post/3lpost0000001"' in preview
    assert "Hello &lt;Minneapolis&gt;" in preview  # text from the network is escaped


def test_a_feed_with_no_posts_says_so(admin_client, top):
    page = admin_client.get(f"{LIST_URL}{top.pk}/change/").text
    assert "This feed shows no posts right now." in page
