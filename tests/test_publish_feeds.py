"""`manage.py publish_feeds`: the feeds' app.bsky.feed.generator records written to (and deleted from)
the publishing account's repo on its (loopback) PDS, signed in with an app password that is never shown."""

import hashlib
import io
import logging

import libipld
import pytest
from django.core.management import CommandError, call_command

from apps.feeds.defaults import create_default_feeds
from apps.feeds.models import Feed
from tests.support.pds import Pds, ipld

pytestmark = pytest.mark.django_db

PASSWORD = "abcd-efgh-ijkl-mnop"
SERVICE_DID = "did:web:feeds.example.com"
GENERATOR = "app.bsky.feed.generator"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
DEFAULT_ALIASES = ["whats-hot", "top-1h", "top-24h"]


@pytest.fixture
def publisher(plc, settings):
    # The default feeds (a migration creates them, but a test that flushes the database removes them).
    create_default_feeds(Feed)
    with Pds() as pds:
        account = pds.add_account("publisher", password=PASSWORD, handle="feeds.example.com")
        pds.publish(plc, account)
        settings.FEED_ACTOR_DID = account.did
        settings.SERVICE_DID = SERVICE_DID
        settings.FEED_ACTOR_APP_PASSWORD = PASSWORD
        settings.FEED_AVATAR = ""
        account.pds = pds
        yield account


def publish(*args):
    out = io.StringIO()
    call_command("publish_feeds", *args, stdout=out)
    return out.getvalue().splitlines()


def generators(account):
    return {path.split("/", 1)[1]: record for path, record in account.records.items() if path.startswith(GENERATOR)}


def expected_record(feed, avatar=None):
    record = {
        "$type": GENERATOR,
        "did": SERVICE_DID,
        "displayName": feed.display_name,
        "description": feed.description,
        "acceptsInteractions": True,
        "createdAt": feed.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if avatar:
        record["avatar"] = avatar
    return ipld(record)


def test_publishing_puts_a_record_for_every_enabled_feed_with_the_avatar_then_unpublishing_deletes_them(
    publisher, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    Feed.objects.create(alias="old", kind="hot", display_name="Old", enabled=False)
    Feed.objects.create(alias="retired", kind="static", display_name="Retired", listed=False,
                        pinned_posts="at://did:plc:x/app.bsky.feed.post/3k")
    avatar = tmp_path / "avatar.png"
    avatar.write_bytes(PNG)
    lines = publish("--avatar", str(avatar))
    assert lines == [f"published at://{publisher.did}/{GENERATOR}/{alias}" for alias in DEFAULT_ALIASES]
    link = libipld.encode_cid(b"\x01\x55\x12\x20" + hashlib.sha256(PNG).digest())
    assert publisher.blobs == {link: PNG}
    blob = {"$type": "blob", "ref": {"$link": link}, "mimeType": "image/png", "size": len(PNG)}
    assert generators(publisher) == {
        feed.alias: expected_record(feed, blob) for feed in Feed.objects.filter(alias__in=DEFAULT_ALIASES)
    }
    calls = [request.path.removeprefix("/xrpc/") for request in publisher.pds.requests]
    assert calls == ["com.atproto.server.createSession", "com.atproto.repo.uploadBlob"] + [
        "com.atproto.repo.putRecord"] * 3
    sign_in = publisher.pds.requests[0].json()
    assert sign_in == {"identifier": publisher.did, "password": PASSWORD}
    assert publisher.pds.requests[1].headers["Content-Type"] == "image/png"

    assert publish("--unpublish") == [
        f"unpublished at://{publisher.did}/{GENERATOR}/{alias}" for alias in DEFAULT_ALIASES]
    assert generators(publisher) == {}
    assert publish("--unpublish", "whats-hot") == [f"unpublished at://{publisher.did}/{GENERATOR}/whats-hot"]
    assert PASSWORD not in caplog.text


def test_publishing_again_replaces_the_record_with_the_feeds_new_name(publisher):
    publish("whats-hot")
    Feed.objects.filter(alias="whats-hot").update(display_name="Hot now", description="")
    publish("whats-hot", "--identifier", "feeds.example.com")
    feed = Feed.objects.get(alias="whats-hot")
    record = expected_record(feed)
    del record["description"]
    assert generators(publisher) == {"whats-hot": record}
    assert publisher.pds.requests[-2].json()["identifier"] == "feeds.example.com"


def test_a_wrong_app_password_stops_before_anything_is_written_and_is_not_repeated(publisher, settings):
    settings.FEED_ACTOR_APP_PASSWORD = "wrong-pass-word-1234"
    with pytest.raises(CommandError) as failure:
        publish()
    message = str(failure.value)
    assert message == (f"could not sign in as {publisher.did} at {publisher.pds.url}: "
                       "AuthenticationRequired: Invalid identifier or password")
    assert "wrong-pass-word-1234" not in message
    assert generators(publisher) == {}


@pytest.mark.parametrize(
    "args, error",
    [
        (["nope"], "no such feed: nope"),
        (["old"], "disabled feeds are not published: old"),
        (["--avatar", "/no/such/avatar.png"], "cannot read the avatar /no/such/avatar.png: No such file or directory"),
        (["--avatar", "avatar.gif"], "the avatar must be a .png or .jpg image, not avatar.gif"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(publisher, args, error):
    Feed.objects.create(alias="old", kind="hot", display_name="Old", enabled=False)
    with pytest.raises(CommandError, match=f"^{error}$"):
        publish(*args)
    assert not any(request.path.endswith("putRecord") for request in publisher.pds.requests)


def test_without_an_app_password_or_a_publishing_account_nothing_is_tried(publisher, settings):
    settings.FEED_ACTOR_APP_PASSWORD = ""
    with pytest.raises(CommandError, match="an app password for the publishing account is needed"):
        publish()
    settings.FEED_ACTOR_APP_PASSWORD = PASSWORD
    settings.FEED_ACTOR_DID = "did:plc:" + "z" * 24
    with pytest.raises(CommandError, match=r"^FEED_ACTOR_DID \(did:plc:z+\) must be the Bluesky account"):
        publish()
    assert publisher.pds.requests == []


CHANGELIST = "/admin/feeds/feed/"


def admin_action(admin_client, action, aliases):
    selected = [feed.pk for feed in Feed.objects.filter(alias__in=aliases)]
    response = admin_client.post(CHANGELIST, {"action": action, "_selected_action": selected}, follow=True)
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def test_the_feed_admin_publishes_and_removes_the_selected_feeds(admin_client, publisher):
    Feed.objects.create(alias="old", kind="hot", display_name="Old", enabled=False)
    uri = f"at://{publisher.did}/{GENERATOR}/top-1h"
    assert admin_action(admin_client, "publish", ["top-1h", "old"]) == [
        "Disabled feeds are not published.", f"Published 1 feed(s): {uri}"]
    assert list(generators(publisher)) == ["top-1h"]
    assert admin_action(admin_client, "unpublish", ["top-1h"]) == [f"Removed 1 feed(s): {uri}"]
    assert generators(publisher) == {}


def test_the_feed_admin_says_why_publishing_failed(admin_client, publisher, settings):
    settings.FEED_ACTOR_APP_PASSWORD = ""
    assert admin_action(admin_client, "publish", ["top-1h"]) == [
        "an app password for the publishing account is needed (FEED_ACTOR_APP_PASSWORD)"]
    assert generators(publisher) == {}
