"""No request body gets a 500: every endpoint that takes one answers bad bodies with a 4xx in its
API's error shape, and free text from clients is bounded and valid UTF-8."""

import json

import pytest
from django.conf import settings
from django.utils import timezone
from ninja import NinjaAPI

import skyline.urls
from apps.accounts.models import APIKey, Label
from apps.feeds import analytics
from apps.search.models import CleanupJob
from tests.support.feed_fixtures import feed_uri
from tests.support.identities import SigningKey, did_plc
from tests.support.stores import BOTH_STORES, query

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

SEND = "/xrpc/app.bsky.feed.sendInteractions"
ALICE = did_plc("alice")
CLEANUP = {
    "identifier": "alice.test", "app_password": "pass", "cleanup_types": ["post"], "delete_until_days_ago": 1,
}

HOSTILE = {
    "arrays nested 100,000 deep": b"[" * 100_000,
    "objects nested 5,000 deep": b'{"a":' * 5_000,
    "a field nested 1,000 deep": b'{"interactions":' + b"[" * 1_000 + b"]" * 1_000 + b', "identifier":'
                                 + b"[" * 1_000 + b"]" * 1_000 + b"}",
    "not JSON": b"{not json",
    "bytes that are not UTF-8": b'{"interactions": [{"item": "\xff"}], "identifier": "\xff"}',
    "a lone surrogate, escaped": b'{"interactions": [{"item": "\\ud800x"}], "identifier": "\\ud800x"}',
    "a lone surrogate, as raw bytes": b'{"interactions": [{"item": "\xed\xa0\x80"}], '
                                      b'"identifier": "\xed\xa0\x80"}',
    "NaN": b'{"interactions": NaN, "delete_until_days_ago": NaN}',
    "a number too large for a double": b"1e400",
    "an array": b"[]",
    "a string": b'"interactions"',
    "null": b"null",
    "wrong types in every field": json.dumps({
        "feed": [], "interactions": [5, None, "x", []], "identifier": {}, "app_password": [],
        "cleanup_types": "post", "delete_until_days_ago": "soon", "actually_delete_stuff": "yes",
    }).encode(),
    "an integer far out of range": json.dumps({**CLEANUP, "delete_until_days_ago": 10**30}).encode(),
}


def _routes():
    """(method, path) of every endpoint that may take a body, from the APIs mounted in skyline.urls."""
    apis = [value for value in vars(skyline.urls).values() if isinstance(value, NinjaAPI)]
    return sorted(
        (method, prefix + path)
        for api in apis
        for prefix, router in api._routers
        for path, view in router.path_operations.items()
        for operation in view.operations
        for method in operation.methods
        if method != "GET"
    )


@pytest.fixture
def callers(plc):
    """For each endpoint, a call that gets past authentication and the query, so the body is read."""
    key = SigningKey("ES256")
    viewer = did_plc("viewer")
    plc.add(viewer, signing_key=key.multikey)
    token = key.token(viewer, settings.SERVICE_DID, lxm="app.bsky.feed.sendInteractions")
    label_key = APIKey.objects.create_key("admins", label=Label.objects.create(name="mpls"))[1]
    job = CleanupJob.objects.create(repo=ALICE, delete_older_than=timezone.now())

    def caller(method, path, query="", **headers):
        def call(client, body):
            return getattr(client, method.lower())(
                path + query, body, content_type="application/json", headers=headers
            )
        return call

    return {
        ("POST", SEND): caller("POST", SEND, Authorization=f"Bearer {token}"),
        ("POST", "/repo/cleanup"): caller("POST", "/repo/cleanup"),
        ("DELETE", "/repo/cleanup"): caller("DELETE", "/repo/cleanup", f"?job_id={job.id}"),
        ("PUT", "/api/admin/feed_members"): caller(
            "PUT", "/api/admin/feed_members", "?feedName=mpls", **{"X-API-Key": label_key}),
        ("DELETE", "/api/admin/feed_members"): caller(
            "DELETE", "/api/admin/feed_members", "?feedName=mpls", **{"X-API-Key": label_key}),
        ("PUT", "/assign_user_to_feed"): caller(
            "PUT", "/assign_user_to_feed", "?feedName=mpls", **{"X-API-Key": label_key}),
        ("PUT", "/unassign_user_from_feed"): caller(
            "PUT", "/unassign_user_from_feed", "?feedName=mpls", **{"X-API-Key": label_key}),
    }


def _in_the_api_shape(path, response):
    body = response.json()
    if path.startswith("/xrpc/"):
        return set(body) == {"error", "message"} and all(isinstance(value, str) for value in body.values())
    return set(body) == {"error"} and isinstance(body["error"], str)


def test_every_endpoint_that_takes_a_body_is_tried(callers):
    assert sorted(callers) == _routes()


@pytest.mark.parametrize("route", _routes(), ids="{0[0]} {0[1]}".format)
def test_no_hostile_body_gets_a_500(client, default_feeds, callers, route):
    client.raise_request_exception = False
    for name, body in HOSTILE.items():
        response = callers[route](client, body)
        assert 400 <= response.status_code < 500, (name, response.status_code, response.content[:200])
        assert _in_the_api_shape(route[1], response), (name, response.content[:200])
    assert CleanupJob.objects.count() == 1  # only the fixture's: no hostile body started a job
    assert CleanupJob.objects.get().state == "running"
    assert analytics.interactions.flush() == 0


def test_cancelling_with_a_body_nested_100000_deep_is_a_400(client, callers):
    response = callers[("DELETE", "/repo/cleanup")](client, b"[" * 100_000)
    assert (response.status_code, response.json()) == (400, {
        "error": "error parsing request: the body is not JSON text in UTF-8: "
                 "depth limit exceeded: line 1 column 1026 (char 1025)",
    })


def test_a_cancel_body_of_the_wrong_shape_is_a_400(client, callers):
    response = callers[("DELETE", "/repo/cleanup")](client, b'["alice.test", "pass"]')
    assert (response.status_code, response.json()) == (400, {
        "error": "error parsing request: "
                 "body: Input should be a valid dictionary or instance of CancelRequest",
    })


def test_an_interaction_with_a_lone_surrogate_is_refused_and_not_buffered(client, default_feeds, callers):
    body = {"feed": feed_uri("whats-hot"), "interactions": [{"item": "\ud800x"}]}
    response = callers[("POST", SEND)](client, json.dumps(body))
    assert (response.status_code, response.json()) == (400, {
        "error": "InvalidRequest",
        "message": "the body is not JSON text in UTF-8: "
                   "no low surrogate in string: line 1 column 104 (char 103)",
    })
    assert analytics.interactions.flush() == 0


def test_an_interaction_that_is_not_an_object_is_refused(client, default_feeds, callers):
    response = callers[("POST", SEND)](client, json.dumps({"interactions": [5]}))
    assert (response.status_code, response.json()) == (400, {
        "error": "InvalidRequest",
        "message": "interactions.0: Input should be a valid dictionary or instance of Interaction",
    })


@pytest.mark.parametrize("field, longest", [
    ("item", 8192), ("event", 381), ("feedContext", 2000), ("reqId", 100), ("feed", 8192),
])
def test_free_text_in_interactions_is_bounded(client, default_feeds, callers, field, longest):
    def send(length):
        interaction = {
            "item": "at://did:plc:a/app.bsky.feed.post/3ka", "event": "app.bsky.feed.defs#requestMore",
        }
        body = {"feed": feed_uri("whats-hot"), "interactions": [interaction]}
        (body if field == "feed" else interaction)[field] = "é" * length
        return callers[("POST", SEND)](client, json.dumps(body))

    too_long = send(longest + 1)
    where = "feed" if field == "feed" else f"interactions.0.{field}"
    assert (too_long.status_code, too_long.json()) == (400, {
        "error": "InvalidRequest", "message": f"{where}: String should have at most {longest} characters",
    })
    assert analytics.interactions.flush() == 0
    assert send(longest).status_code == 200
    assert analytics.interactions.flush() == 1
    column = {"item": "item_uri", "event": "event", "feedContext": "feed_context", "reqId": "req_id",
              "feed": "feed_uri"}[field]
    assert query(f"SELECT {column} FROM feed_interactions") == [("é" * longest,)]


@pytest.mark.parametrize("method, path, shape", [
    ("POST", SEND, {"error": "PayloadTooLarge", "message": "the body is larger than 2621440 bytes"}),
    ("POST", "/repo/cleanup", {"error": "error parsing request: the body is larger than 2621440 bytes"}),
    ("DELETE", "/repo/cleanup", {"error": "error parsing request: the body is larger than 2621440 bytes"}),
])
def test_a_body_over_the_upload_limit_is_a_413(client, default_feeds, callers, method, path, shape):
    body = json.dumps({"interactions": [], "identifier": "a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    response = callers[(method, path)](client, body)
    assert (response.status_code, response.json()) == (413, shape)


def test_a_cleanup_identifier_is_bounded(client):
    response = client.post(
        "/repo/cleanup", json.dumps({**CLEANUP, "identifier": "a" * 2049}), content_type="application/json"
    )
    assert (response.status_code, response.json()) == (400, {
        "error": "error parsing request: identifier: String should have at most 2048 characters",
    })
