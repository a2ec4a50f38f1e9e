"""getFeedSkeleton's short way past the middleware: still counted, still guarded, still a 503 when a
store is down; and answered without sessions or cookies."""

import pytest
from prometheus_client import REGISTRY

from tests.support.feed_fixtures import feed_uri, skeleton
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)
ROUTE = "/xrpc/app.bsky.feed.getFeedSkeleton"


def counted(status):
    labels = {"route": ROUTE, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("skyline_http_requests_total", labels) or 0


def test_feed_requests_are_counted_under_their_route(client, default_feeds):
    answered, refused = counted("200"), counted("400")
    assert skeleton(client, "whats-hot").status_code == 200
    assert skeleton(client, "whats-hot", limit=0).status_code == 400
    assert (counted("200"), counted("400")) == (answered + 1, refused + 1)


def test_the_feed_answer_keeps_the_security_headers_and_sets_no_cookie(client, default_feeds):
    response = skeleton(client, "whats-hot")
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response
    assert "Vary" not in response


def test_a_host_that_is_not_allowed_is_refused(client, default_feeds):
    response = client.get(ROUTE, {"feed": feed_uri("whats-hot")}, HTTP_HOST="skyline.attacker.example")
    assert response.status_code == 400


def test_only_get_is_answered(client, default_feeds):
    assert client.post(ROUTE, {"feed": feed_uri("whats-hot")}).status_code == 405


def test_a_store_that_is_down_gets_the_503_json_error(client, default_feeds, clickhouse_down):
    response = skeleton(client, "whats-hot")
    assert response.status_code == 503
    assert response.json() == {"error": "ServiceUnavailable", "message": "A data store is unavailable; try again shortly."}
    assert response["Retry-After"] == "5"
    clickhouse_down()
    assert skeleton(client, "whats-hot").status_code == 200
