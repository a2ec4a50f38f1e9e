"""The seed's label API (/api/admin/... and the legacy root paths) with X-API-Key keys."""

import datetime

import pytest
from django.db import connections

from apps.accounts.models import ActorLabel, APIKey, Label
from apps.feeds.label_api import FAILURE_LIMIT
from apps.feeds.models import Feed
from tests.support.stores import BOTH_STORES

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
BOB = "did:plc:bobbbbbbbbbbbbbbbbbbbbbb"
CAROL = "did:plc:carolccccccccccccccccccc"


@pytest.fixture
def labels():
    return Label.objects.create(name="mpls"), Label.objects.create(name="tqsp")


@pytest.fixture
def mpls_key(labels):
    return APIKey.objects.create_key("mpls moderators", label=labels[0])[1]


@pytest.fixture
def admin_key(labels):
    return APIKey.objects.create_key("admins")[1]


def call(client, method, path, key, **params):
    headers = {"X-API-Key": key} if key is not None else {}
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return getattr(client, method)(f"{path}?{query}", headers=headers)


def test_a_scoped_key_adds_a_member_by_handle_under_either_name(client, plc, mpls_key):
    plc.add(ALICE, handle="alice.test")
    plc.add(BOB, handle="bob.test")
    response = call(client, "put", "/api/admin/feed_members", mpls_key, feedName="mpls", handle="alice.test")
    assert (response.status_code, response.json()) == (200, {"message": "success"})
    response = call(client, "put", "/assign_user_to_feed", mpls_key, feedName="a-mpls", handle="@bob.test")
    assert (response.status_code, response.json()) == (200, {"message": "success"})
    members = ActorLabel.objects.filter(label__name="mpls").order_by("did")
    assert [(member.did, member.handle) for member in members] == [(ALICE, "alice.test"), (BOB, "bob.test")]
    assert members[0].added_by.startswith("API key mpls moderators (sky_")


def test_a_key_scoped_to_one_label_cannot_touch_another(client, plc, mpls_key):
    plc.add(ALICE, handle="alice.test")
    for method, path in [("put", "/api/admin/feed_members"), ("delete", "/api/admin/feed_members"),
                         ("get", "/api/admin/feed_members"), ("put", "/assign_user_to_feed"),
                         ("put", "/unassign_user_from_feed"), ("get", "/feed_members")]:
        response = call(client, method, path, mpls_key, feedName="cl-tqsp", handle="alice.test")
        assert response.status_code == 401, path
        assert response.json()["error"].startswith("not authorized: you are not authorized to "), path
    assert not ActorLabel.objects.exists()


def test_missing_bad_and_revoked_keys_are_refused(client, labels):
    response = call(client, "get", "/api/admin/feed_members", None, feedName="mpls")
    assert (response.status_code, response.json()) == (401, {"error": "Missing required API key in X-API-Key header"})
    response = call(client, "get", "/feed_members", "sky_12345678_guess", feedName="mpls")
    assert (response.status_code, response.json()) == (401, {"error": "Invalid API key"})
    key, plain = APIKey.objects.create_key("old", label=labels[0])
    assert call(client, "get", "/feed_members", plain, feedName="mpls").status_code == 200
    key.revoke()
    assert call(client, "get", "/feed_members", plain, feedName="mpls").json() == {"error": "Invalid API key"}


def test_repeated_bad_keys_from_one_client_are_rate_limited(client, mpls_key):
    for _ in range(FAILURE_LIMIT):
        assert call(client, "get", "/feed_members", "sky_00000000_nope", feedName="mpls").status_code == 401
    refused = call(client, "get", "/feed_members", mpls_key, feedName="mpls")
    assert refused.status_code == 429
    assert refused.json() == {"error": "too many invalid API keys from this client; try again later"}
    assert int(refused["Retry-After"]) > 0
    other_client = client.get("/feed_members?feedName=mpls", headers={"X-API-Key": mpls_key}, REMOTE_ADDR="10.0.0.9")
    assert other_client.status_code == 200


def test_behind_a_trusted_proxy_clients_are_told_apart_by_x_forwarded_for(client, mpls_key, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(FAILURE_LIMIT):
        bad = client.get("/feed_members?feedName=mpls", headers={"X-API-Key": "sky_00000000_nope"},
                         HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
        assert bad.status_code == 401
    # The same client, whatever it claims further left, is refused; another client behind the proxy is not.
    spoofed = client.get("/feed_members?feedName=mpls", headers={"X-API-Key": mpls_key},
                         HTTP_X_FORWARDED_FOR="203.0.113.5, 198.51.100.7", **proxy)
    assert spoofed.status_code == 429
    other = client.get("/feed_members?feedName=mpls", headers={"X-API-Key": mpls_key},
                       HTTP_X_FORWARDED_FOR="198.51.100.8", **proxy)
    assert other.status_code == 200


def test_parameter_errors_are_clear_4xx(client, plc, mpls_key, admin_key):
    cases = [
        (mpls_key, "put", {"handle": "alice.test"}, 400, "feedName is required"),
        (mpls_key, "put", {"feedName": "mpls"}, 400, "handle of user to add to feed is required"),
        (mpls_key, "delete", {"feedName": "mpls"}, 400, "handle of user to remove from feed is required"),
        (mpls_key, "put", {"feedName": "mpls", "handle": "not%20a%20handle"}, 400,
         "invalid handle: 'not a handle' is neither a handle nor a DID"),
        # An unknown label is refused as the seed refused it, even to an admin key.
        (admin_key, "put", {"feedName": "nope", "handle": "alice.test"}, 401,
         "not authorized: you are not authorized to assign users to this feed"),
        (mpls_key, "get", {"feedName": "mpls", "limit": "ten"}, 400,
         "invalid parameters: limit: Input should be a valid integer, unable to parse string as an integer"),
    ]
    for key, method, params, status, error in cases:
        response = call(client, method, "/api/admin/feed_members", key, **params)
        assert (response.status_code, response.json()) == (status, {"error": error}), params


def test_a_handle_that_does_not_resolve_both_ways_is_404(client, plc, mpls_key):
    plc.add(ALICE, handle="alice.test")
    plc.handles["mallory.test"] = ALICE
    response = call(client, "put", "/api/admin/feed_members", mpls_key, feedName="mpls", handle="mallory.test")
    assert response.status_code == 404
    assert response.json()["error"] == (
        f"failed to resolve handle to did: mallory.test: {ALICE} does not claim the handle mallory.test "
        "(its document says alice.test)"
    )
    response = call(client, "put", "/api/admin/feed_members", mpls_key, feedName="mpls", handle="nobody.test")
    assert response.status_code == 404
    assert not ActorLabel.objects.exists()


def test_members_are_removed_by_did_even_when_it_no_longer_resolves_and_by_handle(client, labels, mpls_key):
    mpls = labels[0]
    ActorLabel.objects.create(label=mpls, did=ALICE, handle="alice.test")
    ActorLabel.objects.create(label=mpls, did=BOB, handle="bob.test")
    response = call(client, "delete", "/api/admin/feed_members", mpls_key, feedName="mpls", handle=ALICE)
    assert (response.status_code, response.json()) == (200, {"message": "success"})
    response = call(client, "put", "/unassign_user_from_feed", mpls_key, feedName="a-mpls", handle="bob.test")
    assert (response.status_code, response.json()) == (200, {"message": "success"})
    assert not mpls.members.exists()


def test_members_are_paged_newest_first_and_searchable(client, labels, mpls_key):
    mpls, tqsp = labels
    base = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
    for index, (did, handle) in enumerate([(ALICE, "alice.test"), (BOB, ""), (CAROL, "carol.example")]):
        member = ActorLabel.objects.create(label=mpls, did=did, handle=handle)
        ActorLabel.objects.filter(pk=member.pk).update(created_at=base + datetime.timedelta(days=index))
    ActorLabel.objects.create(label=tqsp, did="did:plc:otherxxxxxxxxxxxxxxxxxxx")

    page = call(client, "get", "/api/admin/feed_members", mpls_key, feedName="a-mpls", limit=2, page=1).json()
    assert page == {
        "members": [
            {"did": CAROL, "handle": "carol.example", "createdAt": "2025-01-03T00:00:00Z"},
            {"did": BOB, "createdAt": "2025-01-02T00:00:00Z"},
        ],
        "page": 1, "totalPages": 2, "totalCount": 3,
    }
    page = call(client, "get", "/api/admin/feed_members", mpls_key, feedName="mpls", limit=2, page=2).json()
    assert [member["did"] for member in page["members"]] == [ALICE]
    found = call(client, "get", "/api/admin/feed_members", mpls_key, feedName="mpls", search="ALICE").json()
    assert (found["totalCount"], found["members"][0]["did"]) == (1, ALICE)
    past_the_end = call(client, "get", "/api/admin/feed_members", mpls_key, feedName="mpls", page=2**63 - 1)
    assert past_the_end.status_code == 200 and past_the_end.json()["members"] == []
    defaults = call(client, "get", "/api/admin/feed_members", mpls_key, feedName="mpls", limit=0, page=-3).json()
    assert (defaults["page"], defaults["totalPages"], len(defaults["members"])) == (1, 1, 3)

    legacy = call(client, "get", "/feed_members", mpls_key, feedName="mpls").json()
    assert legacy == {"authors": [ALICE, BOB, CAROL]}
    mpls.members.all().delete()
    assert call(client, "get", "/feed_members", mpls_key, feedName="mpls").json() == {"authors": None}


def test_members_show_the_handle_and_display_name_skyline_has_indexed(client, labels, mpls_key):
    mpls = labels[0]
    ActorLabel.objects.create(label=mpls, did=ALICE, handle="alice.old")
    ActorLabel.objects.create(label=mpls, did=BOB, handle="")
    now = datetime.datetime.now(datetime.timezone.utc)
    clickhouse = connections["clickhouse"]
    clickhouse.insert_rows("identities", ["did", "seq", "changed_at", "time_us", "handle"],
                           [(ALICE, 1, now, 10, "alice.new")])
    clickhouse.insert_rows(
        "profiles", ["did", "rkey", "display_name", "description", "avatar_cid", "banner_cid", "created_at",
                     "deleted", "time_us"],
        [(ALICE, "self", "Alice A.", "", "", "", now, 0, 10), (BOB, "self", "Bob", "", "", "", now, 0, 11)],
    )
    members = call(client, "get", "/api/admin/feed_members", mpls_key, feedName="mpls").json()["members"]
    assert [(m["did"], m.get("handle"), m.get("displayName")) for m in members] == [
        (BOB, None, "Bob"),
        (ALICE, "alice.new", "Alice A."),
    ]


def test_feeds_are_keyed_by_the_seeds_names_and_types_and_a_scoped_key_sees_only_its_label(
        client, labels, mpls_key, admin_key):
    mpls = labels[0]
    Feed.objects.create(alias="a-mpls", kind="label", label=mpls, display_name="Minneapolis")
    Feed.objects.get_or_create(alias="whats-hot", defaults={"kind": "hot", "display_name": "Hot"})
    Feed.objects.get_or_create(alias="top-1h", defaults={"kind": "top", "display_name": "Top"})
    Feed.objects.get_or_create(alias="top-24h", defaults={"kind": "top", "display_name": "Top 24h"})
    pinned = "at://did:plc:q6gjnaw2blty4crticxkmujt/app.bsky.feed.post/3lzrksmt6jk2b"
    Feed.objects.create(alias="at-bangers", kind="static", pinned_posts=pinned, display_name="At bangers")
    Feed.objects.create(alias="bangers", kind="static", pinned_posts=pinned, display_name="Bangers")
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = [("a-mpls", did, 30, 1, 900, now, 1) for did in [ALICE, ALICE, BOB, ""]]
    rows.append(("whats-hot", CAROL, 50, 0, 800, now, 1))
    rows.append(("bangers", CAROL, 50, 0, 800, now, 1))
    connections["clickhouse"].insert_rows(
        "feed_request_analytics",
        ["feed_name", "user_did", "limit_requested", "has_cursor", "latency_us", "requested_at", "time_us"],
        rows,
    )
    scoped = call(client, "get", "/api/admin/feeds", mpls_key).json()
    assert scoped == {"feeds": {"mpls": {"feed_type": "authorlabel.Feed", "user_count": 2}}}
    everything = call(client, "get", "/api/admin/feeds", admin_key).json()["feeds"]
    assert everything == {
        "mpls": {"feed_type": "authorlabel.Feed", "user_count": 2},
        "hot": {"feed_type": "hot.Feed", "user_count": 1},
        "1h": {"feed_type": "hot.Feed", "user_count": 0},
        "24h": {"feed_type": "hot.Feed", "user_count": 0},
        "bangers": {"feed_type": "static.Feed", "user_count": 1},
    }


def test_the_api_docs_are_for_staff_only(client, admin_client):
    assert client.get("/api/admin/docs").status_code == 302
    assert admin_client.get("/api/admin/docs").status_code == 200
    paths = admin_client.get("/api/admin/openapi.json").json()["paths"]
    assert {"/api/admin/feed_members", "/api/admin/feeds", "/assign_user_to_feed", "/feed_members"} <= set(paths)
