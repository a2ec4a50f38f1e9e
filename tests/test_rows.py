"""Jetstream events to rows: the seed's columns, strong-ref CIDs stripped, bad events rejected whole."""

import datetime

import orjson
import pytest

from apps.indexer import rows
from apps.indexer.rows import RowBatch, collection_matcher, has_embedded_media, is_collection_pattern
from tests.support.firehose_events import (
    ALICE, BOB, CAROL, DAVE, IMAGES, T0, account, at, commit, delete, follow, identity, iso, like, line, post,
    post_uri,
)

A_POST = post_uri(ALICE, "3lpost000001a")


def rows_of(*events, max_event_bytes=1_000_000):
    batch = RowBatch(max_event_bytes)
    for event in events:
        batch.add(event if isinstance(event, bytes) else line(event))
    return batch


def test_a_like_becomes_a_likes_row_and_a_repo_record_without_the_strong_ref_cid():
    batch = rows_of(like(BOB, "3llike000001b", T0, A_POST, created_us=T0 - 2_000_000))
    assert batch.rows["likes"] == [
        (BOB, "3llike000001b", A_POST, ALICE, "app.bsky.feed.post", "3lpost000001a", at(T0 - 2_000_000), 0, T0)
    ]
    assert batch.rows["repo_records"] == [(
        BOB, "app.bsky.feed.like", "3llike000001b", "create",
        '{"$type":"app.bsky.feed.like","createdAt":"%s","subject":{"uri":"%s"}}' % (iso(T0 - 2_000_000), A_POST),
        at(T0), 0, T0,
    )]
    assert batch.counts == {("commit", "app.bsky.feed.like"): 1}


def test_a_reply_with_images_keeps_its_languages_parent_root_and_blob_links():
    reply = {"root": {"cid": "bafyroot", "uri": A_POST}, "parent": {"cid": "bafyparent", "uri": A_POST}}
    batch = rows_of(post(BOB, "3lpost000002b", T0, "a reply", langs=["en", "de"], reply=reply, embed=IMAGES))
    uri = post_uri(BOB, "3lpost000002b")
    assert batch.rows["posts"] == [(BOB, "3lpost000002b", uri, at(T0), "a reply", ["en", "de"], 1, A_POST, A_POST, 0, T0)]
    stored = orjson.loads(batch.rows["repo_records"][0][4])
    assert stored["reply"] == {"root": {"uri": A_POST}, "parent": {"uri": A_POST}}
    assert stored["embed"]["images"][0]["image"]["ref"] == {"$link": "bafkreicatimage"}
    assert list(stored) == sorted(stored)


@pytest.mark.parametrize("embed, expected", [
    (IMAGES, 1),
    ({"$type": "app.bsky.embed.video", "video": {}}, 1),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": IMAGES, "record": {}}, 1),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.external"}, "record": {}}, 0),
    ({"$type": "app.bsky.embed.external", "external": {}}, 0),
    ({"$type": "app.bsky.embed.record", "record": {}}, 0),
    (None, 0),
    ("images", 0),
    ({"$type": []}, 0),
    ({"$type": {}}, 0),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": ["app.bsky.embed.images"]}}, 0),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": []}, 0),
])
def test_only_images_and_video_count_as_embedded_media(embed, expected):
    assert has_embedded_media(embed) == expected


@pytest.mark.parametrize("embed", [{"$type": []}, {"$type": {}}, {"$type": None}, [IMAGES], 42])
def test_a_post_whose_embed_has_the_wrong_type_is_indexed_without_media(embed):
    batch = rows_of(post(ALICE, "3lpost000001a", T0, "hi", embed=embed), LIKE)
    assert batch.rows["posts"] == [(ALICE, "3lpost000001a", A_POST, at(T0), "hi", [], 0, "", "", 0, T0)]
    assert len(batch.rows["likes"]) == 1 and batch.rejects == {}


@pytest.mark.parametrize("langs, kept", [("en", []), ({"en": 1}, []), (["en", 7, None, ["de"], "ja"], ["en", "ja"])])
def test_languages_of_the_wrong_type_are_dropped(langs, kept):
    assert rows_of(post(ALICE, "3lpost000001a", T0, "hi", langs=langs)).rows["posts"][0][5] == kept


def test_follows_and_blocks_point_at_their_subject_account():
    batch = rows_of(follow(BOB, "3lfollow0001b", T0, ALICE), follow(CAROL, "3lblock00001c", T0 + 1, DAVE,
                                                                      collection="app.bsky.graph.block"))
    assert batch.rows["follows"] == [(BOB, "3lfollow0001b", ALICE, at(T0), 0, T0)]
    assert batch.rows["blocks"] == [(CAROL, "3lblock00001c", DAVE, at(T0), 0, T0 + 1)]  # createdAt has ms


def test_deletes_are_tombstones_keyed_like_the_rows_they_delete():
    batch = rows_of(
        delete(ALICE, "app.bsky.feed.post", "3lpost000001a", T0),
        delete(BOB, "app.bsky.feed.like", "3llike000001b", T0 + 1),
        delete(BOB, "app.bsky.feed.repost", "3lrepost0001b", T0 + 2),
        delete(BOB, "app.bsky.graph.follow", "3lfollow0001b", T0 + 3),
        delete(BOB, "app.bsky.graph.block", "3lblock00001b", T0 + 4),
        delete(BOB, "app.bsky.graph.listitem", "3llistitem01b", T0 + 5),
    )
    assert batch.rows["posts"] == [(ALICE, "3lpost000001a", A_POST, at(T0), "", [], 0, "", "", 1, T0)]
    assert batch.rows["likes"] == [(BOB, "3llike000001b", "", "", "", "", at(T0 + 1), 1, T0 + 1)]
    assert batch.rows["reposts"] == [(BOB, "3lrepost0001b", "", "", "", "", at(T0 + 2), 1, T0 + 2)]
    assert batch.rows["follows"] == [(BOB, "3lfollow0001b", "", at(T0 + 3), 1, T0 + 3)]
    assert batch.rows["blocks"] == [(BOB, "3lblock00001b", "", at(T0 + 4), 1, T0 + 4)]
    assert [row[:5] + row[6:] for row in batch.rows["repo_records"]][-1] == (
        BOB, "app.bsky.graph.listitem", "3llistitem01b", "delete", "", 1, T0 + 5)


def test_an_update_writes_the_new_version_of_the_post():
    batch = rows_of(post(ALICE, "3lpost000001a", T0 + 5, "edited", created_us=T0, operation="update"))
    assert batch.rows["posts"] == [(ALICE, "3lpost000001a", A_POST, at(T0), "edited", [], 0, "", "", 0, T0 + 5)]
    assert batch.rows["repo_records"][0][3] == "update"


def test_identity_and_account_events_are_kept_per_did():
    ms = 1000
    batch = rows_of(identity(CAROL, T0, handle="Carol.Example.com", seq=7), identity(BOB, T0 + ms),
                    account(DAVE, T0 + 2 * ms, active=False, status="takendown", seq=8),
                    account(BOB, T0 + 3 * ms, active=True))
    assert batch.rows["identities"] == [
        (CAROL, "carol.example.com", 7, at(T0), T0), (BOB, "", 100, at(T0 + ms), T0 + ms)]
    assert batch.rows["account_statuses"] == [
        (DAVE, 0, "takendown", 8, at(T0 + 2 * ms), T0 + 2 * ms), (BOB, 1, "", 101, at(T0 + 3 * ms), T0 + 3 * ms)]
    assert batch.counts == {("identity", ""): 2, ("account", ""): 2}


@pytest.mark.parametrize("created, expected", [
    ("2026-05-25T14:23:28.778Z", datetime.datetime(2026, 5, 25, 14, 23, 28, 778000, tzinfo=datetime.timezone.utc)),
    ("2026-05-25T14:23:28", datetime.datetime(2026, 5, 25, 14, 23, 28, tzinfo=datetime.timezone.utc)),
    ("2026-05-25T16:23:28+02:00", datetime.datetime(2026, 5, 25, 14, 23, 28, tzinfo=datetime.timezone.utc)),
    ("yesterday", None),
    ("0001-01-01T00:00:00Z", None),
    (1716647008, None),
])
def test_created_at_is_the_records_time_when_sane_and_the_event_time_otherwise(created, expected):
    event = like(BOB, "3llike000001b", T0, A_POST)
    event["commit"]["record"]["createdAt"] = created
    assert rows_of(event).rows["likes"][0][6] == (expected or at(T0))


def test_unknown_fields_and_other_lexicons_are_indexed_as_they_come():
    event = commit(ALICE, T0, "create", "fm.teal.alpha.feed.play", "3lplay0000001", {"trackName": "x", "cid": "c"})
    event["cursor"] = 99
    event["commit"]["newField"] = True
    batch = rows_of(event)
    assert batch.rows["repo_records"] == [
        (ALICE, "fm.teal.alpha.feed.play", "3lplay0000001", "create", '{"$type":"fm.teal.alpha.feed.play","trackName":"x"}',
         at(T0), 0, T0)]
    assert batch.counts == {("commit", "other"): 1}
    assert batch.rejects == {}


def _nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


def _with(event, path, value):
    target = event
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return line(event)


_DROP = object()
LIKE = like(BOB, "3llike000001b", T0, A_POST)
FOLLOW = follow(BOB, "3lfollow0001b", T0, ALICE)
POST = post(ALICE, "3lpost000001a", T0, "hi")

BAD_EVENTS = [
    ("malformed_json", b'{"did": "did:plc:x", "time_us": '),
    ("malformed_json", b'{"did":"did:plc:x","text":"\xff\xfe"}'),
    ("oversized", line({**POST, "commit": {**POST["commit"], "record": {"text": "x" * 5000}}})),
    ("not_an_object", b'[1, 2, 3]'),
    ("invalid_did", _with(dict(LIKE), ["did"], _DROP)),
    ("invalid_did", _with(dict(LIKE), ["did"], "alice")),
    ("invalid_did", _with(dict(LIKE), ["did"], 42)),
    ("invalid_time_us", _with(dict(LIKE), ["time_us"], "1716647008000000")),
    ("invalid_time_us", _with(dict(LIKE), ["time_us"], True)),
    ("invalid_time_us", _with(dict(LIKE), ["time_us"], 31527015470)),
    ("unknown_kind", _with(dict(LIKE), ["kind"], "sync")),
    ("invalid_commit", _with(dict(LIKE), ["commit"], "create")),
    ("invalid_operation", line(commit(BOB, T0, "upsert", "app.bsky.feed.like", "3llike000001b", {}))),
    ("invalid_collection", line(commit(BOB, T0, "create", "like", "3llike000001b", {}))),
    ("invalid_rkey", line(commit(BOB, T0, "create", "app.bsky.feed.like", "a/b", {}))),
    ("invalid_rkey", line(commit(BOB, T0, "delete", "app.bsky.feed.like", ".."))),
    ("invalid_record", line({**LIKE, "commit": {**LIKE["commit"], "record": ["not", "an", "object"]}})),
    ("invalid_record", line(commit(BOB, T0, "create", "app.bsky.feed.like", "3llike000001b", {"subject": None}))),
    ("invalid_at_uri", line(like(BOB, "3llike000001b", T0, "https://bsky.app/profile/alice/post/1"))),
    ("invalid_at_uri", line(like(BOB, "3llike000001b", T0, "at://did:plc:alice/app.bsky.feed.post"))),
    ("invalid_did", line(follow(BOB, "3lfollow0001b", T0, "alice.bsky.social"))),
    ("invalid_record", line(post(ALICE, "3lpost000001a", T0, 42))),
    ("invalid_at_uri", line(post(ALICE, "3lpost000001a", T0, "hi", reply={"parent": {"uri": "nope"}, "root": {}}))),
    ("too_deep", line(commit(ALICE, T0, "create", "app.bsky.actor.profile", "self", {"x": _nested(40)}))),
    ("too_deep", b'{"did":"did:plc:x","kind":"commit","commit":' + b"[" * 2000 + b"]" * 2000 + b"}"),
    ("invalid_identity", line({**identity(CAROL, T0), "identity": {"handle": 7}})),
    ("invalid_identity", line(identity(CAROL, T0, seq=-1))),
    ("invalid_account", line({**account(DAVE, T0, True), "account": {"active": "yes"}})),
    ("invalid_account", line(account(DAVE, T0, False, status=["takendown"]))),
    ("malformed_json", line(post(ALICE, "3lpost000001a", T0, "SURROGATE")).replace(b"SURROGATE", b"\\ud800x")),
    ("invalid_time_us", _with(dict(LIKE), ["time_us"], 2**63).replace(b"%d" % 2**63, b"%d" % 2**64)),
    ("invalid_identity", line(identity(CAROL, T0, seq=2**63))),
    # A value nested ~1000 deep passes orjson but must not reach repr() (it overflows the stack).
    ("invalid_did", b'{"time_us":%d,"kind":"commit","did":' % T0 + b"[" * 1000 + b"]" * 1000 + b"}"),
    ("invalid_time_us", b'{"did":"%s","time_us":' % BOB.encode() + b"[" * 1000 + b"]" * 1000 + b"}"),
    ("unknown_kind", _with(dict(LIKE), ["kind"], "KIND").replace(b'"KIND"', b"[" * 1000 + b"]" * 1000)),
]


@pytest.mark.parametrize("reason, raw", BAD_EVENTS)
def test_a_bad_event_is_rejected_whole_counted_by_reason_and_kept_as_a_dead_letter(reason, raw):
    batch = rows_of(raw, max_event_bytes=4096)
    assert batch.rejects == {reason: 1}
    assert {table: rows for table, rows in batch.rows.items() if rows and table != "firehose_rejects"} == {}
    [(received_at, kept_reason, detail, kept_raw)] = batch.rows["firehose_rejects"]
    assert (kept_reason, kept_raw) == (reason, raw.rstrip(b"\n").decode("utf-8", "replace"))
    assert batch.events == 1 and batch.counts == {}


def test_good_events_around_bad_ones_are_all_kept():
    batch = rows_of(LIKE, b"garbage", FOLLOW, b"{}", POST)
    assert batch.rejects == {"malformed_json": 1, "invalid_time_us": 1}
    assert (len(batch.rows["likes"]), len(batch.rows["follows"]), len(batch.rows["posts"])) == (1, 1, 1)
    assert batch.events == 5


def test_an_event_whose_mapping_fails_unexpectedly_is_rejected_alone_with_one_traceback(monkeypatch, caplog):
    def broken(*args):
        raise KeyError("surprise")

    monkeypatch.setitem(rows.SPECIALISED, "app.bsky.graph.follow", ("follows", broken, rows.graph_tombstone))
    batch = rows_of(LIKE, FOLLOW, POST, FOLLOW)
    assert batch.rejects == {"internal_error": 2}
    assert [row[1:] for row in batch.rows["firehose_rejects"]] == [
        ("internal_error", "KeyError: 'surprise'", line(FOLLOW).decode().strip())] * 2
    assert (len(batch.rows["likes"]), len(batch.rows["posts"]), len(batch.rows["follows"])) == (1, 1, 0)
    assert [row[1] for row in batch.rows["repo_records"]] == ["app.bsky.feed.like", "app.bsky.feed.post"]
    [logged] = [record for record in caplog.records if "internal_error" in record.message]
    assert logged.exc_info[0] is KeyError


def test_wanted_collections_take_nsids_and_whole_segment_prefixes():
    wanted = collection_matcher(["app.bsky.feed.post", "app.bsky.graph.*"])
    assert [wanted(c) for c in ("app.bsky.feed.post", "app.bsky.graph.follow", "app.bsky.feed.like",
                                "app.bsky.graphx.a")] == [True, True, False, False]
    assert [is_collection_pattern(p) for p in ("app.bsky.feed.post", "app.bsky.*", "app.bsky.graph.fo*", "post",
                                               "*")] == [True, True, False, False, False]


PLC = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"


@pytest.mark.parametrize("uri", [
    f"at://{PLC}/app.bsky.feed.post/3jzfcijpj2z2a", "at://did:web:example.com/com.example.fooBar/self",
    "at://did:plc:" + "a" * 2040 + "/app.bsky.feed.post/a", "at://did:plc:" + "a" * 2041 + "/app.bsky.feed.post/a",
    f"at://{PLC}", f"at://{PLC}/app.bsky.feed.post", f"at://{PLC}/app.bsky.feed.post/", f"at://{PLC}/app.bsky/a",
    "at://alice.test/app.bsky.feed.post/a", f"at://{PLC}/app.bsky.feed.post/..", f"at://{PLC}/app.bsky.feed.post/a/b",
    f"at://{PLC}/app.bsky.feed.post/a?x=1", f"at://{PLC}/app.bsky.feed.post/a#frag", f"https://{PLC}/app.bsky.feed.post/a",
    f"at://{PLC}:/app.bsky.feed.post/a", f"at://{PLC}/app.bsky.feed.post/" + "a" * 513, f"AT://{PLC}/app.bsky.feed.post/a",
    f"at://{PLC}/app.bsky.feed.post/a\n", f"at://{PLC}\n/app.bsky.feed.post/a", f"at://{PLC}/app.bsky.feed.post\n/a",
    f"at://{PLC}/-app.bsky.feed.post/a", f"at://{PLC}/app.bsky.feed.7post/a",
])
def test_the_mapping_reads_record_uris_exactly_as_the_syntax_module_does(uri):
    from skyline.atproto import syntax

    expected = syntax.parse_record_uri(uri)
    assert rows.record_uri_parts(uri) == expected
    assert rows.record_uri_parts(uri) == expected  # again, now that its valid parts are remembered


def test_remembered_verdicts_are_bounded_and_never_remember_an_invalid_string(monkeypatch):
    checker = rows._Remembered(rows._DID, limit=3)
    assert not checker("did:plc:") and not checker("did:plc:") and checker.valid == set()
    long_did = "did:web:" + "a" * 100
    assert checker(long_did) and checker.valid == set()  # too long to be worth keeping: checked each time
    for number in range(3):
        assert checker(f"did:plc:{number}")
    assert checker.valid == {"did:plc:0", "did:plc:1", "did:plc:2"}
    assert checker("did:plc:3") and checker.valid == {"did:plc:3"}  # full: forgotten all at once
