"""Browsers on other origins reach the public endpoints only from allowed origins; API paths answer
unknown paths, wrong methods and queries with too many fields in their API's JSON error shape."""

import logging

import pytest
from django.conf import settings

from apps.accounts.models import APIKey, Label
from tests.support.stores import BOTH_STORES

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

FRONT_END = "https://front.example"
STRANGER = "https://evil.example"


@pytest.fixture(autouse=True)
def allowed_origin(settings):
    settings.CORS_ALLOWED_ORIGINS = [FRONT_END]
    settings.CORS_ALLOW_ALL_ORIGINS = False


def preflight(client, path, origin, method="GET", headers="content-type"):
    return client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers,
    })


@pytest.mark.parametrize("path, method", [
    ("/api/stats", "GET"),
    ("/stats", "GET"),
    ("/api/search/posts", "GET"),
    ("/repo/cleanup", "POST"),
    ("/repo/cleanup", "DELETE"),
    ("/repo/did:plc:aliceaaaaaaaaaaaaaaaaaaa", "GET"),
    ("/list/members", "GET"),
    ("/xrpc/app.bsky.feed.describeFeedGenerator", "GET"),
    ("/.well-known/did.json", "GET"),
])
def test_a_preflight_passes_for_an_allowed_origin_and_fails_for_another(client, path, method):
    allowed = preflight(client, path, FRONT_END, method)
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == FRONT_END
    assert method in allowed["Access-Control-Allow-Methods"].split(", ")
    assert "content-type" in allowed["Access-Control-Allow-Headers"].split(", ")
    assert "Access-Control-Allow-Credentials" not in allowed

    refused = preflight(client, path, STRANGER, method)
    assert "Access-Control-Allow-Origin" not in refused


def test_an_allowed_origin_reads_the_answer_and_another_cannot(client):
    allowed = client.get("/xrpc/app.bsky.feed.describeFeedGenerator", headers={"Origin": FRONT_END})
    assert (allowed.status_code, allowed["Access-Control-Allow-Origin"]) == (200, FRONT_END)
    assert allowed["Vary"] == "origin"  # caches keep one answer per origin
    refused = client.get("/xrpc/app.bsky.feed.describeFeedGenerator", headers={"Origin": STRANGER})
    assert refused.status_code == 200 and "Access-Control-Allow-Origin" not in refused


def test_any_origin_with_a_star(client, settings):
    settings.CORS_ALLOWED_ORIGINS = []
    settings.CORS_ALLOW_ALL_ORIGINS = True
    answer = preflight(client, "/api/search/posts", STRANGER)
    assert answer["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", [
    "/api/admin/feed_members", "/feed_members", "/admin/login/", "/metrics", "/xrpc/app.bsky.feed.getFeedSkeleton",
])
def test_the_label_api_admin_metrics_and_the_feed_hot_path_are_not_opened_even_to_an_allowed_origin(client, path):
    answer = preflight(client, path, FRONT_END, headers="x-api-key")
    assert "Access-Control-Allow-Origin" not in answer
    answer = client.get(path, headers={"Origin": FRONT_END})
    assert "Access-Control-Allow-Origin" not in answer


def test_no_origin_is_allowed_by_default(client, settings):
    settings.CORS_ALLOWED_ORIGINS = []
    assert "Access-Control-Allow-Origin" not in preflight(client, "/stats", FRONT_END)


def test_unknown_api_paths_are_json_404s_in_each_apis_shape(client):
    cases = [
        ("/xrpc/app.bsky.feed.getNothing", 501,
         {"error": "MethodNotImplemented", "message": "no such method: app.bsky.feed.getNothing"}),
        ("/.well-known/nothing", 404, {"error": "NotFound", "message": "no such path: /.well-known/nothing"}),
        ("/api/nothing", 404, {"error": "not found: /api/nothing"}),
        ("/api/admin/nothing", 404, {"error": "not found: /api/admin/nothing"}),
        ("/repo/did:plc:x/extra", 404, {"error": "not found: /repo/did:plc:x/extra"}),
    ]
    for path, status, body in cases:
        response = client.get(path)
        assert (response.status_code, response["Content-Type"], response.json()) == (
            status, "application/json", body), path
    # Pages outside the APIs keep Django's own 404.
    assert client.get("/nothing")["Content-Type"].startswith("text/html")


def test_wrong_methods_are_json_405s_in_each_apis_shape(client):
    response = client.post("/xrpc/app.bsky.feed.getFeedSkeleton")
    assert (response.status_code, response.json()) == (
        405, {"error": "InvalidRequest", "message": "method POST not allowed; use GET"})
    assert response["Allow"] == "GET"
    cases = [
        ("put", "/api/stats", "GET"),
        ("post", "/feed_members", "GET"),
        ("put", "/repo/cleanup", "DELETE, GET, POST"),
        ("post", "/api/admin/feeds", "GET"),
    ]
    for method, path, allowed in cases:
        response = getattr(client, method)(path)
        assert (response.status_code, response.json()) == (
            405, {"error": f"method {method.upper()} not allowed; use {allowed}"}), path
        assert response["Allow"] == allowed


TOO_MANY_FIELDS = "too many parameters; at most 1000 are accepted"


@pytest.mark.parametrize("path", [
    "/api/search/posts?q=cat", "/list/members?uri=x", "/redir?url=x", "/repo/cleanup?job_id=1",
    "/api/admin/feed_members?feedName=mpls", "/xrpc/app.bsky.feed.getFeedSkeleton?feed=x",
])
def test_a_query_with_too_many_fields_is_a_400_in_each_apis_shape_and_logs_no_error(client, caplog, path):
    key = APIKey.objects.create_key("admins", label=Label.objects.create(name="mpls"))[1]
    query = "&a=1" * settings.DATA_UPLOAD_MAX_NUMBER_FIELDS  # one more field than Django reads
    response = client.get(path + query, headers={"X-API-Key": key})
    expected = ({"error": "InvalidRequest", "message": TOO_MANY_FIELDS} if path.startswith("/xrpc/")
                else {"error": TOO_MANY_FIELDS})
    assert (response.status_code, response.json()) == (400, expected)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
