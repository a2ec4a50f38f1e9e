"""GET /repo/{did}: an account's records as JSON, from a real CAR served by its (loopback) PDS."""

import hashlib
import json

import libipld
import pytest

from apps.search import lists
from skyline.atproto.ratelimit import RateLimiter
from tests.support.identities import did_plc
from tests.support.pds import Pds, ipld

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("unpaced_repo_checkouts")]

AVATAR = libipld.encode_cid(b"\x01\x55\x12\x20" + hashlib.sha256(b"avatar").digest())
IMAGE = libipld.encode_cid(b"\x01\x55\x12\x20" + hashlib.sha256(b"image").digest())
FRIEND = did_plc("friend")
LIKED = {"uri": f"at://{FRIEND}/app.bsky.feed.post/3kx", "cid": "bafyx"}
REPOSTED = {"uri": f"at://{FRIEND}/app.bsky.feed.post/3ky", "cid": "bafyy"}
PROFILE = {
    "$type": "app.bsky.actor.profile",
    "displayName": "Exporter",
    "description": "likes birds",
    "avatar": {"$type": "blob", "ref": {"$link": AVATAR}, "mimeType": "image/jpeg", "size": 1234},
    "createdAt": "2024-05-01T10:00:00.123Z",
}
IMAGES = {"$type": "app.bsky.embed.images", "images": [
    {"alt": "a bird", "image": {"$type": "blob", "ref": {"$link": IMAGE}, "mimeType": "image/png", "size": 99}}]}


@pytest.fixture
def pds(plc):
    with Pds() as server:
        server.plc = plc
        yield server


def exported(response):
    """The JSON of a repo export, which is streamed record by record."""
    assert response.status_code == 200
    return json.loads(response.getvalue())


def account(pds, name, records):
    """An account on `pds`, registered in the directory, holding `records` ({"collection/rkey": JSON})."""
    created = pds.add_account(name)
    pds.publish(pds.plc, created)
    for path, record in records.items():
        collection, rkey = path.split("/")
        created.put(collection, rkey, ipld(record))
    return created


def test_every_kind_of_record_comes_out_with_createdat_at_whole_seconds_and_the_profile_as_it_is(client, pds):
    owner = account(pds, "exporter", {
        "app.bsky.actor.profile/self": PROFILE,
        "app.bsky.feed.post/3kpost000001": {"$type": "app.bsky.feed.post", "text": "birds!", "langs": ["en"],
                                            "embed": IMAGES, "createdAt": "2024-05-01T10:00:00.987654Z"},
        "app.bsky.feed.post/3kpost000002": {"$type": "app.bsky.feed.post", "text": "later",
                                            "createdAt": "2024-05-01T12:30:45.5+02:00"},
        "app.bsky.feed.post/3kpost000003": {"$type": "app.bsky.feed.post", "text": "odd", "createdAt": "yesterday"},
        "app.bsky.feed.like/3klike000001": {"$type": "app.bsky.feed.like", "createdAt": "2024-05-02T00:00:00Z",
                                            "subject": LIKED},
        "app.bsky.feed.repost/3krepost0001": {"$type": "app.bsky.feed.repost", "createdAt": "2024-05-02T00:00:01Z",
                                              "subject": REPOSTED},
        "app.bsky.graph.follow/3kfollow0001": {"$type": "app.bsky.graph.follow", "subject": FRIEND,
                                               "createdAt": "2024-05-03T00:00:00.000Z"},
        "app.bsky.graph.block/3kblock00001": {"$type": "app.bsky.graph.block", "subject": did_plc("troll"),
                                              "createdAt": "2024-05-04T00:00:00.000-05:00"},
        "app.bsky.graph.listitem/3kitem000001": {"$type": "app.bsky.graph.listitem", "subject": FRIEND,
                                                 "list": "at://x/app.bsky.graph.list/y",
                                                 "createdAt": "2024-05-05T00:00:00Z"},
    })
    response = client.get(f"/repo/{owner.did}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    uri = f"at://{owner.did}"
    assert exported(response) == {
        "posts": [
            {"uri": f"{uri}/app.bsky.feed.post/3kpost000001",
             "content": {"$type": "app.bsky.feed.post", "text": "birds!", "langs": ["en"], "embed": IMAGES,
                         "createdAt": "2024-05-01T10:00:00Z"}},
            {"uri": f"{uri}/app.bsky.feed.post/3kpost000002",
             "content": {"$type": "app.bsky.feed.post", "text": "later", "createdAt": "2024-05-01T12:30:45+02:00"}},
            {"uri": f"{uri}/app.bsky.feed.post/3kpost000003",
             "content": {"$type": "app.bsky.feed.post", "text": "odd", "createdAt": "yesterday"}},
        ],
        "likes": [
            {"uri": f"{uri}/app.bsky.feed.like/3klike000001",
             "content": {"$type": "app.bsky.feed.like", "createdAt": "2024-05-02T00:00:00Z", "subject": LIKED}},
        ],
        "reposts": [
            {"uri": f"{uri}/app.bsky.feed.repost/3krepost0001",
             "content": {"$type": "app.bsky.feed.repost", "createdAt": "2024-05-02T00:00:01Z", "subject": REPOSTED}},
        ],
        "follows": [
            {"uri": f"{uri}/app.bsky.graph.follow/3kfollow0001",
             "content": {"$type": "app.bsky.graph.follow", "subject": FRIEND, "createdAt": "2024-05-03T00:00:00Z"}},
        ],
        "blocks": [
            {"uri": f"{uri}/app.bsky.graph.block/3kblock00001",
             "content": {"$type": "app.bsky.graph.block", "subject": did_plc("troll"),
                         "createdAt": "2024-05-04T00:00:00-05:00"}},
        ],
        "profile": PROFILE,
    }
    (checkout,) = [r for r in pds.requests if r.path == "/xrpc/com.atproto.sync.getRepo"]
    assert checkout.query == {"did": owner.did}
    assert checkout.headers["Accept"] == "application/vnd.ipld.car"


def test_a_repo_without_a_profile_is_valid_json_with_a_null_profile(client, pds):
    owner = account(pds, "quiet", {"app.bsky.feed.post/3kpost000001": {
        "$type": "app.bsky.feed.post", "text": "hi", "createdAt": "2024-05-01T10:00:00Z"}})
    text = client.get(f"/repo/{owner.did}").getvalue()
    assert text.endswith(b'"profile": null}')
    body = json.loads(text)
    assert body["profile"] is None
    assert [post["uri"] for post in body["posts"]] == [f"at://{owner.did}/app.bsky.feed.post/3kpost000001"]
    assert body["likes"] == body["reposts"] == body["follows"] == body["blocks"] == []


def test_an_empty_repo_is_empty_lists_and_no_profile(client, pds):
    owner = account(pds, "empty", {})
    assert exported(client.get(f"/repo/{owner.did}")) == {
        "posts": [], "likes": [], "reposts": [], "follows": [], "blocks": [], "profile": None}


def test_errors_are_json_with_a_status_saying_whose_fault(client, pds):
    gone = account(pds, "gone", {})
    pds.delete_account(gone.did)
    elsewhere = pds.add_account("elsewhere")
    pds.plc.add(elsewhere.did, handle="elsewhere.test", pds="http://127.0.0.1:9")  # nothing listens there
    cases = [
        ("/repo/not-a-did", 400, "not a valid DID: 'not-a-did'"),
        (f"/repo/{did_plc('nobody')}", 404, None),
        (f"/repo/{gone.did}", 404, None),
        (f"/repo/{elsewhere.did}", 502, None),
    ]
    for path, status, error in cases:
        response = client.get(path)
        assert (path, response.status_code) == (path, status)
        assert set(response.json()) == {"error"}
        if error:
            assert response.json()["error"] == error


def test_checkouts_are_paced_and_shared_with_list_members(client, pds, monkeypatch):
    monkeypatch.setattr(lists, "REPO_CHECKOUTS", RateLimiter(0.5))
    monkeypatch.setattr(lists, "CHECKOUT_WAIT_SECONDS", 0.2)
    owner = account(pds, "busy", {})
    assert client.get(f"/repo/{owner.did}").status_code == 200
    response = client.get(f"/repo/{owner.did}")
    assert (response.status_code, response.json()) == (
        429, {"error": "too many repositories are being read; try again shortly"})
    members = client.get("/list/members", {"uri": f"at://{owner.did}/app.bsky.graph.list/3klist"})
    assert members.status_code == 429


def test_the_clean_up_routes_still_win_over_a_did_called_cleanup(client):
    response = client.get("/repo/cleanup/stats")
    assert response.status_code == 200
    assert "error" not in response.json()
    assert client.get("/repo/cleanup").json() != {"error": "not a valid DID: 'cleanup'"}
