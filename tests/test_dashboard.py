"""The admin index: indexer health, daily statistics as charts and a table, feed usage, from real tables."""

import datetime
import re
import time

import pytest
from django.db import connections

from skyline.dashboard import bar_chart
from apps.accounts.models import Label
from apps.feeds.models import Feed
from apps.indexer import health
from apps.indexer.cursor import cursor_store
from tests.support.stores import BOTH_STORES, query
from apps.indexer.rows import COLUMNS
from skyline.atproto.syntax import tid

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC)
TODAY = datetime.datetime.combine(NOW.date(), datetime.time(1), UTC)
YESTERDAY = TODAY - datetime.timedelta(days=1)
POST_COLUMNS = COLUMNS["posts"]
SUBJECT_COLUMNS = COLUMNS["likes"]
GRAPH_COLUMNS = COLUMNS["follows"]


def insert(table, columns, rows):
    connections["clickhouse"].insert_rows(table, columns, rows)


REPO_COLUMNS = COLUMNS["repo_records"]
COLLECTIONS = {"posts": "app.bsky.feed.post", "likes": "app.bsky.feed.like", "follows": "app.bsky.graph.follow",
               "blocks": "app.bsky.graph.block"}


class Repos:
    """Writes records as the consumer does: the record's table plus repo_records, TID record keys."""

    def __init__(self):
        self.clock = 0

    def create(self, table, did, day, **fields):
        self.clock += 1
        time_us = int(day.timestamp() * 1_000_000) + self.clock
        rkey = tid(time_us, 0)
        self._write(table, did, rkey, day, time_us, 0, "create", fields)
        return rkey

    def delete(self, table, did, rkey, day):
        self.clock += 1
        self._write(table, did, rkey, day, int(day.timestamp() * 1_000_000) + self.clock, 1, "delete", {})

    def _write(self, table, did, rkey, day, time_us, deleted, operation, fields):
        insert("repo_records", REPO_COLUMNS, [(did, COLLECTIONS[table], rkey, operation, "{}", day, deleted, time_us)])
        if table == "posts":
            uri = f"at://{did}/app.bsky.feed.post/{rkey}"
            insert("posts", POST_COLUMNS, [(did, rkey, uri, day, "hello", ["en"], 0, "", "", deleted, time_us)])
        elif table == "likes":
            subject = fields.get("subject", "at://did:plc:a/app.bsky.feed.post/3kpost")
            row = (did, rkey, subject, "did:plc:a", "app.bsky.feed.post", "3kpost", day, deleted, time_us)
            insert("likes", SUBJECT_COLUMNS, [row])
        else:
            insert(table, GRAPH_COLUMNS, [(did, rkey, fields.get("target", ""), day, deleted, time_us)])


@pytest.fixture
def indexed():
    """Two days of activity, with a deleted post and an undone like that must not count."""
    repos = Repos()
    for did in ["did:plc:a", "did:plc:a", "did:plc:b"]:
        repos.create("posts", did, TODAY)
    repos.create("posts", "did:plc:c", YESTERDAY)
    repos.delete("posts", "did:plc:b", repos.create("posts", "did:plc:b", TODAY), TODAY)
    for did, day in [("did:plc:d", TODAY), ("did:plc:e", TODAY), ("did:plc:e", YESTERDAY)]:
        repos.create("likes", did, day)
    repos.delete("likes", "did:plc:f", repos.create("likes", "did:plc:f", TODAY), TODAY)
    repos.create("follows", "did:plc:a", TODAY, target="did:plc:b")
    repos.create("blocks", "did:plc:g", YESTERDAY, target="did:plc:a")
    repos.create("blocks", "did:plc:g", YESTERDAY, target="did:plc:b")


def shown_days(page):
    """{date: [posts, likes, follows, blocks, active]} from the page's daily table."""
    body = re.search(r'<table id="recent-days">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    return {row[0]: [int(value) for value in row[1:]] for row in cells}


def test_the_daily_figures_shown_match_the_tables(admin_client, indexed):
    page = admin_client.get("/admin/").text
    days = shown_days(page)
    today, yesterday = f"{TODAY:%Y-%m-%d}", f"{YESTERDAY:%Y-%m-%d}"
    assert len(days) == 7
    assert days[today] == [3, 2, 1, 0, 5]  # active: a, b, d, e and f (who liked, then undid it)
    assert days[yesterday] == [1, 1, 0, 2, 3]  # c posted, e liked, g blocked twice
    for table, column in [("posts", 0), ("likes", 1), ("follows", 2), ("blocks", 3)]:
        counted = dict(query(
            f"SELECT toString(toDate(created_at)), count() FROM {table} FINAL WHERE deleted = 0 GROUP BY 1"
        ))
        assert {day: figures[column] for day, figures in days.items() if figures[column]} == counted, table
    active = dict(query(
        "SELECT toString(toDate(fromUnixTimestamp64Micro(time_us))), uniqExact(repo) FROM repo_records GROUP BY 1"
    ))
    assert {day: figures[4] for day, figures in days.items() if figures[4]} == active

    assert f"<title>{today}: 3</title>" in page  # the posts chart's bar for today
    assert f"<title>{yesterday}: 2</title>" in page  # the blocks chart's bar for yesterday
    assert page.count('<figure class="skyline-chart"') == 5


def test_the_indexer_health_is_shown(admin_client):
    cursor_time = datetime.datetime(2025, 3, 1, 12, 30, 5, tzinfo=UTC)
    cursor_store().save(int(cursor_time.timestamp() * 1_000_000))
    health.publish(last_time_us=int(datetime.datetime.now(UTC).timestamp() * 1_000_000) - 2_500_000, events_per_second=1234.5,
                   rejects={"invalid_json": 3, "bad_did": 1}, last_error="writing 10 rows to posts: timed out")
    health.publish_connection({"state": "connected", "url": "wss://jetstream.example/subscribe", "reconnects": 2,
                               "failed_attempts": 0, "last_error": "Jetstream closed the connection",
                               "last_error_at": time.time() - 125, "last_event_at": time.time() - 1.5})
    page = admin_client.get("/admin/").text
    health_table = re.search(r'<div class="module" id="indexer-health">(.*?)</div>', page, re.S).group(1)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", health_table))
    assert "Status connected (reported 0 minutes ago)" in text
    assert "Jetstream wss://jetstream.example/subscribe" in text
    assert "Last connection error Jetstream closed the connection (2 minutes ago)" in text
    assert "Reconnects 2" in text
    assert 1.5 <= float(re.search(r"Last event received (\d+\.\d) s ago", text).group(1)) < 60
    assert f"Cursor 2025-03-01 12:30:05 UTC ({int(cursor_time.timestamp() * 1_000_000)})" in text
    assert 2.5 <= float(re.search(r"Lag (\d+\.\d) s", text).group(1)) < 60
    assert "Events per second 1234.5" in text
    assert "Rejected events 4 (invalid_json: 3, bad_did: 1)" in text
    assert "Last write error or reject writing 10 rows to posts: timed out" in text


def test_each_feed_shows_its_requests_and_viewers(admin_client):
    Feed.objects.create(alias="a-mpls", kind="label", label=Label.objects.create(name="mpls"), display_name="M")
    old = NOW - datetime.timedelta(days=3)
    rows = [("a-mpls", did, 30, 1, 900, when, 1)
            for did, when in [("did:plc:a", NOW), ("did:plc:a", NOW), ("", NOW), ("did:plc:b", old)]]
    insert("feed_request_analytics",
           ["feed_name", "user_did", "limit_requested", "has_cursor", "latency_us", "requested_at", "time_us"], rows)
    page = admin_client.get("/admin/").text
    row = re.search(r"<tr><td>a-mpls</td>(.*?)</tr>", page).group(1)
    assert re.findall(r"<td[^>]*>(.*?)</td>", row) == ["label", "mpls", "3", "1", "4", "2"]
    assert 'href="/admin/feeds/feed/"' in page


def test_an_empty_install_renders_zeros_and_no_cursor(admin_client):
    page = admin_client.get("/admin/").text
    assert set(map(tuple, shown_days(page).values())) == {(0, 0, 0, 0, 0)}
    assert "none saved yet" in page and "not reporting" in page
    assert "<th scope=\"row\">Lag</th><td>unknown</td>" in page
    assert page.count("Nothing recorded in these 30 days") == 5  # every chart's empty state
    assert page.count(">today</text>") == 5


def test_each_chart_labels_today_under_its_own_bar_and_weeks_back_from_it():
    days = [{"date": NOW.date() - datetime.timedelta(days=n), "num_posts": n + 1} for n in range(30)]
    chart = bar_chart(days, "num_posts", "Posts")
    last = chart["bars"][-1]
    assert chart["ticks"][0] == {"x": round(last["x"] + last["width"] / 2, 1), "text": "today"}
    assert [tick["text"] for tick in chart["ticks"][1:]] == [
        f"{NOW.date() - datetime.timedelta(days=n):%b %d}" for n in (7, 14, 21, 28)]
    assert all(tick["x"] + 20 <= chart["width"] for tick in chart["ticks"])  # "today" is not cut off
    assert not chart["empty"]
