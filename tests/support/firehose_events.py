"""Hand-written Jetstream events for the indexer tests (made-up DIDs, real shapes)."""

import datetime
import time

import orjson

from skyline.atproto.syntax import utc_text

ALICE = "did:plc:alice0000000000000000000"
BOB = "did:plc:bob00000000000000000000000"
CAROL = "did:plc:carol000000000000000000000"
DAVE = "did:web:dave.example.com"

# Recent enough for the 72-hour views, whole seconds so the expected datetimes are easy to write.
T0 = (int(time.time()) - 3600) * 1_000_000


def at(time_us):
    return datetime.datetime.fromtimestamp(time_us // 1_000_000, datetime.timezone.utc) + datetime.timedelta(
        microseconds=time_us % 1_000_000
    )


def iso(time_us):
    return utc_text(at(time_us), "milliseconds")


def post_uri(did, rkey):
    return f"at://{did}/app.bsky.feed.post/{rkey}"


def line(event):
    return orjson.dumps(event) + b"\n"


def commit(did, time_us, operation, collection, rkey, record=None, **extra):
    body = {"rev": "3lrev0000000a", "operation": operation, "collection": collection, "rkey": rkey}
    if record is not None:
        body["record"] = {"$type": collection, **record}
        body["cid"] = "bafyreirecordcid"
    return {"did": did, "time_us": time_us, "kind": "commit", "commit": body, **extra}


def post(did, rkey, time_us, text, created_us=None, operation="create", **record):
    return commit(did, time_us, operation, "app.bsky.feed.post", rkey,
                  {"createdAt": iso(created_us or time_us), "text": text, **record})


def like(did, rkey, time_us, subject_uri, created_us=None, collection="app.bsky.feed.like"):
    return commit(did, time_us, "create", collection, rkey,
                  {"createdAt": iso(created_us or time_us), "subject": {"cid": "bafyreisubject", "uri": subject_uri}})


def follow(did, rkey, time_us, subject, collection="app.bsky.graph.follow"):
    return commit(did, time_us, "create", collection, rkey, {"createdAt": iso(time_us), "subject": subject})


def delete(did, collection, rkey, time_us):
    return commit(did, time_us, "delete", collection, rkey)


def identity(did, time_us, handle=None, seq=100):
    body = {"did": did, "seq": seq, "time": iso(time_us)}
    if handle is not None:
        body["handle"] = handle
    return {"did": did, "time_us": time_us, "kind": "identity", "identity": body}


def account(did, time_us, active, status=None, seq=101):
    body = {"active": active, "did": did, "seq": seq, "time": iso(time_us)}
    if status is not None:
        body["status"] = status
    return {"did": did, "time_us": time_us, "kind": "account", "account": body}


IMAGES = {"$type": "app.bsky.embed.images", "images": [
    {"alt": "a cat", "image": {"$type": "blob", "ref": {"$link": "bafkreicatimage"}, "mimeType": "image/jpeg",
                               "size": 1234}}]}


def story():
    """A small day on the network, in arrival order (time_us not monotonic), and what it leaves visible."""
    a_post = post_uri(ALICE, "3lpost000001a")
    return [
        post(ALICE, "3lpost000001a", T0 + 1_000_000, "hello world", langs=["en"], embed=IMAGES),
        post(BOB, "3lpost000002b", T0 + 3_000_000, "a reply", langs=["en", "de"],
             reply={"root": {"cid": "bafyreiroot", "uri": a_post}, "parent": {"cid": "bafyreiparent", "uri": a_post}}),
        like(BOB, "3llike000001b", T0 + 2_000_000, a_post),  # arrives after a later event
        like(CAROL, "3llike000002c", T0 + 4_000_000, a_post),
        {**like(DAVE, "3llike000003d", T0 + 5_000_000, a_post), "cursor": 12345},  # v2 servers add `cursor`
        commit(CAROL, T0 + 6_000_000, "create", "app.bsky.feed.repost", "3lrepost0001c",
               {"createdAt": iso(T0 + 6_000_000), "subject": {"cid": "bafyreisubject", "uri": a_post}}),
        follow(BOB, "3lfollow0001b", T0 + 7_000_000, ALICE),
        follow(CAROL, "3lfollow0002c", T0 + 8_000_000, ALICE),
        follow(CAROL, "3lblock00001c", T0 + 9_000_000, DAVE, collection="app.bsky.graph.block"),
        commit(ALICE, T0 + 10_000_000, "update", "app.bsky.actor.profile", "self",
               {"displayName": "Alice", "avatar": {"$type": "blob", "ref": {"$link": "bafkreiavatar"},
                                                   "mimeType": "image/png", "size": 99}}),
        post(ALICE, "3lpost000001a", T0 + 11_000_000, "hello world, edited", created_us=T0 + 1_000_000,
             operation="update", langs=["en"], embed=IMAGES),
        delete(DAVE, "app.bsky.feed.like", "3llike000003d", T0 + 12_000_000),  # an unlike
        delete(CAROL, "app.bsky.graph.follow", "3lfollow0002c", T0 + 13_000_000),  # an unfollow
        delete(BOB, "app.bsky.feed.post", "3lpost000002b", T0 + 14_000_000),  # the reply goes
        identity(CAROL, T0 + 15_000_000, handle="Carol.Example.com"),
        account(DAVE, T0 + 16_000_000, active=False, status="takendown"),
        account(BOB, T0 + 17_000_000, active=True),
    ]
