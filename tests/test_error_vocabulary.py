"""The error vocabulary (skyline/api_errors.py) as clients see it: a fault of Skyline's own is a logged
500 in the API's shape, a store that is down is the one 503 on every API, and a parameter that does
not validate is worded the same way on every API."""

import json
import logging

import pytest
from django.db import ProgrammingError, connections

from apps.accounts.models import APIKey
from skyline.api_errors import validation_message
from tests.support.feed_fixtures import feed_uri, skeleton
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

UNAVAILABLE = {"error": "ServiceUnavailable", "message": "A data store is unavailable; try again shortly."}
UNEXPECTED = "internal server error; it has been logged"
NOT_AN_INTEGER = "limit: Input should be a valid integer, unable to parse string as an integer"


def broken_query(*args, **kwargs):
    """A programming error of ours: a query of a table that does not exist, on the real store."""
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute("SELECT count() FROM no_such_table")


@pytest.fixture
def admin_key():
    return APIKey.objects.create_key("admins")[1]


def logged_errors(caplog):
    """What skyline/api_errors.py logged, with the class of the exception whose traceback it carries."""
    return [
        (record.levelno, record.getMessage(), record.exc_info[0])
        for record in caplog.records if record.name == "skyline.api_errors"
    ]


@pytest.mark.parametrize("path", ["/api/stats", "/stats"])  # the seed's path at the root too
def test_a_programming_error_is_a_logged_500_not_an_outage(client, monkeypatch, caplog, path):
    monkeypatch.setattr("apps.search.stats.cached_stats", broken_query)
    response = client.get(path)
    assert (response.status_code, response.json()) == (500, {"error": UNEXPECTED})
    assert logged_errors(caplog) == [(logging.ERROR, f"unexpected error during GET {path}", ProgrammingError)]


def test_a_fault_in_the_label_api_is_a_logged_500_in_its_shape(client, admin_key, monkeypatch, caplog):
    monkeypatch.setattr("apps.feeds.label_api.feeds_with_users", broken_query)
    response = client.get("/api/admin/feeds", headers={"X-API-Key": admin_key})
    assert (response.status_code, response.json()) == (500, {"error": UNEXPECTED})
    assert logged_errors(caplog) == [
        (logging.ERROR, "unexpected error during GET /api/admin/feeds", ProgrammingError)
    ]


# getFeedSkeleton is answered past the middleware (skyline/hot_paths.py), describeFeedGenerator through it.
@pytest.mark.parametrize("method", ["describeFeedGenerator", "getFeedSkeleton"])
def test_an_xrpc_fault_is_a_logged_500_in_its_shape(client, default_feeds, monkeypatch, caplog, method):
    monkeypatch.setattr("apps.feeds.api.served_feeds", broken_query)
    path = f"/xrpc/app.bsky.feed.{method}"
    response = client.get(path, {"feed": feed_uri("whats-hot")})
    assert (response.status_code, response.json()) == (
        500, {"error": "InternalServerError", "message": UNEXPECTED}
    )
    assert logged_errors(caplog) == [(logging.ERROR, f"unexpected error during GET {path}", ProgrammingError)]


def test_a_store_that_is_down_is_the_one_503_on_every_api(client, default_feeds, admin_key, clickhouse_down):
    answers = [
        client.get("/api/search/posts", {"q": "cat"}),
        client.get("/api/stats"),
        client.get("/api/admin/feeds", headers={"X-API-Key": admin_key}),
        skeleton(client, "whats-hot"),
    ]
    assert [(answer.status_code, answer.json(), answer["Retry-After"]) for answer in answers] == [
        (503, UNAVAILABLE, "5")
    ] * len(answers)


def test_a_parameter_that_does_not_validate_is_worded_alike_on_every_api(client, admin_key):
    search = client.get("/api/search/posts", {"q": "cat", "limit": "ten"})
    label = client.get(
        "/api/admin/feed_members?feedName=mpls&limit=ten", headers={"X-API-Key": admin_key}
    )
    assert (search.status_code, search.json()) == (400, {"error": f"error parsing request: {NOT_AN_INTEGER}"})
    assert (label.status_code, label.json()) == (400, {"error": f"invalid parameters: {NOT_AN_INTEGER}"})


def test_an_xrpc_body_that_does_not_validate_names_the_field_as_the_client_sent_it(client, default_feeds):
    body = json.dumps({"interactions": "none"})
    response = client.post("/xrpc/app.bsky.feed.sendInteractions", body, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {
        "error": "InvalidRequest", "message": "interactions: Input should be a valid list",
    })


def test_the_validation_wording_names_fields_by_their_path_in_what_the_client_sent():
    errors = [
        {"loc": ("query", "limit"), "msg": "Input should be a valid integer"},
        {"loc": ("body", "body", "interactions", 0, "item"), "msg": "String too long"},
        {"loc": ("body", "body"), "msg": "Input should be a valid dictionary"},
        {"loc": (), "input": "hunter2"},
    ]
    assert validation_message(errors) == (
        "limit: Input should be a valid integer; "
        "interactions.0.item: String too long; "
        "body: Input should be a valid dictionary; "
        "body: invalid"
    )
