"""/metrics tells per feed (requests, latency, distinct viewers), the store (rows by table, statements
by kind, errors), post search and clean-up jobs."""

import datetime
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DatabaseError, connections
from prometheus_client import REGISTRY

import apps.indexer.metrics  # noqa: F401  (the dashboard charts its series too)
from apps.feeds import metrics as feed_metrics
from apps.feeds.metrics import DistinctCounter
from apps.feeds.models import Feed
from apps.search import metrics as search_metrics
from tests.support.feed_fixtures import skeleton
from tests.support.identities import SigningKey, did_plc
from tests.support.stores import BOTH_STORES

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]
PINNED = "at://did:plc:q6gjnaw2blty4crticxkmujt/app.bsky.feed.post/3lzrksmt6jk2b"
ROOT = Path(__file__).resolve().parent.parent


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_metrics_show_each_feeds_requests_latency_and_distinct_viewers(client, plc):
    Feed.objects.create(alias="metered", kind="static", display_name="Metered", pinned_posts=PINNED)
    alice, bob = did_plc("metricsalice"), did_plc("metricsbob")
    alice_key, bob_key = SigningKey(), SigningKey()
    plc.add(alice, signing_key=alice_key.multikey)
    plc.add(bob, signing_key=bob_key.multikey)
    tokens = [alice_key.token(alice, settings.SERVICE_DID), alice_key.token(alice, settings.SERVICE_DID),
              bob_key.token(bob, settings.SERVICE_DID), None]
    for token in tokens:
        assert skeleton(client, "metered", token=token).status_code == 200
    assert skeleton(client, "nowhere").status_code == 400  # unknown feeds make no series

    text = scrape(client)
    assert 'skyline_feed_requests_total{feed="metered"} 4.0' in text
    assert 'skyline_feed_request_duration_seconds_count{feed="metered"} 4.0' in text
    assert 'skyline_feed_viewers{feed="metered"} 2.0' in text
    assert 'feed="nowhere"' not in text


def test_feeds_past_the_limit_count_as_other(monkeypatch):
    monkeypatch.setattr(feed_metrics, "_feeds", {})
    monkeypatch.setattr(feed_metrics, "MAX_FEEDS", 2)
    before = sample("skyline_feed_requests_total", feed="other")
    for alias in ["first-feed", "second-feed", "third-feed", "fourth-feed"]:
        feed_metrics.observe(alias, None, 0.001)
    assert set(feed_metrics._feeds) == {"first-feed", "second-feed", "other"}
    assert sample("skyline_feed_requests_total", feed="other") - before == 2


def test_distinct_viewers_are_counted_within_a_few_percent_over_a_sliding_hour():
    now = [0.0]
    viewers = DistinctCounter(window=3600, slots=12, clock=lambda: now[0])
    for number in range(20_000):
        viewers.add(f"did:plc:viewer{number}")
        viewers.add(f"did:plc:viewer{number}")
    assert abs(viewers.count() - 20_000) < 20_000 * 0.05
    now[0] = 1800.0
    for number in range(3):
        viewers.add(f"did:plc:late{number}")
    assert abs(viewers.count() - 20_003) < 20_000 * 0.05
    now[0] = 3700.0  # the first five minutes have left the window
    assert viewers.count() == 3
    now[0] = 9000.0
    assert viewers.count() == 0


def test_the_store_counts_rows_by_table_and_statements_and_errors_by_kind():
    clickhouse = connections["clickhouse"]
    rows_before = sample("skyline_store_rows_inserted_total", table="feed_request_analytics")
    selects_before = sample("skyline_store_query_duration_seconds_count", kind="select")
    errors_before = sample("skyline_store_errors_total", kind="select")
    insert_errors_before = sample("skyline_store_errors_total", kind="insert")
    now = datetime.datetime.now(datetime.timezone.utc)
    clickhouse.insert_rows(
        "feed_request_analytics",
        ["feed_name", "user_did", "limit_requested", "has_cursor", "latency_us", "requested_at", "time_us"],
        [("metered", "", 50, 0, 100, now, 1), ("metered", "", 50, 0, 100, now, 2)],
    )
    with clickhouse.cursor() as cursor:
        cursor.execute("SELECT count() FROM feed_request_analytics")
        with pytest.raises(DatabaseError):
            cursor.execute("SELECT no_such_column FROM feed_request_analytics")
    assert sample("skyline_store_rows_inserted_total", table="feed_request_analytics") - rows_before == 2
    assert sample("skyline_store_query_duration_seconds_count", kind="select") - selects_before == 2
    with pytest.raises(DatabaseError):
        clickhouse.insert_rows("no_such_table", ["a"], [(1,)])
    assert sample("skyline_store_errors_total", kind="select") - errors_before == 1
    assert sample("skyline_store_errors_total", kind="insert") - insert_errors_before == 1


def test_searches_are_counted_by_outcome_with_the_posts_they_found(client):
    ok_before = sample("skyline_search_queries_total", outcome="ok")
    invalid_before = sample("skyline_search_queries_total", outcome="invalid")
    empty_pages_before = sample("skyline_search_results_bucket", le="0.0")
    assert client.get("/api/search/posts?q=nothing").json() == {"posts": []}
    assert client.get("/api/search/posts?q=").status_code == 400
    assert sample("skyline_search_queries_total", outcome="ok") - ok_before == 1
    assert sample("skyline_search_queries_total", outcome="invalid") - invalid_before == 1
    assert sample("skyline_search_results_bucket", le="0.0") - empty_pages_before == 1


def test_clean_up_runs_are_counted_by_outcome_from_a_fixed_set():
    before = {outcome: sample("skyline_cleanup_runs_total", outcome=outcome)
              for outcome in ["partial", "completed", "other"]}
    for outcome in ["deleted 120", "completed", "something new"]:
        search_metrics.cleanup_ran(outcome)
    after = {outcome: sample("skyline_cleanup_runs_total", outcome=outcome) - before[outcome] for outcome in before}
    assert after == {"partial": 1, "completed": 1, "other": 1}


def test_the_grafana_dashboard_charts_only_metrics_skyline_exports():
    dashboard = json.loads((ROOT / "deploy/grafana/skyline.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    names = {name for expr in expressions for name in re.findall(r"\b(skyline_[a-z_]+)", expr)}
    exported = {metric.name for metric in REGISTRY.collect()}
    suffixes = ("_bucket", "_count", "_sum", "_total")
    unknown = {name for name in names if name not in exported and not any(
        name.endswith(suffix) and name[: -len(suffix)] in exported for suffix in suffixes)}
    assert not unknown
    for wanted in ["skyline_feed_requests_total", "skyline_feed_viewers", "skyline_store_rows_inserted_total",
                   "skyline_store_query_duration_seconds_bucket", "skyline_search_queries_total",
                   "skyline_cleanup_runs_total"]:
        assert wanted in names, wanted
