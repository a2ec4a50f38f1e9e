"""The ATProto syntax rules (skyline/atproto/syntax.py), each with valid and invalid examples.

The examples follow the atproto specs: atproto.com/specs/did, /handle, /nsid, /record-key,
/at-uri-scheme and /tid.
"""

import datetime

import pytest

from skyline.atproto import syntax

PLC = "did:plc:z72i7hdynmk6r22z27h6tvur"


@pytest.mark.parametrize("value", [
    PLC, "did:web:example.com", "did:web:localhost%3A8080", "did:method:val:two", "did:m:v",
    "did:example:abc-XYZ_0.9", "did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF",
    "did:plc:" + "a" * 2040,
])
def test_a_did_is_did_a_lowercase_method_and_an_identifier(value):
    assert syntax.is_did(value)


@pytest.mark.parametrize("value", [
    "", "did", "did:", "did:plc", "did:plc:", "DID:plc:abc", "did:PLC:abc", "did:pl1c:abc", "did:plc:abc:",
    "did:plc:abc%", "did:plc:a b", "did:plc:abc/def", "did:plc:abc?x", "did:plc:abc#frag", PLC + "\n",
    "did:plc:" + "a" * 2041, "at://" + PLC, None, 5,
])
def test_not_a_did(value):
    assert not syntax.is_did(value)


@pytest.mark.parametrize("value, expected", [
    (PLC, True), ("did:web:example.com", True), ("did:web:localhost%3A8080", True),
    ("did:plc:z72i7hdynmk6r22z27h6tvu", False),  # 23 characters
    ("did:plc:z72i7hdynmk6r22z27h6tvur1", False),  # 1 is not base32
    ("did:plc:Z72I7HDYNMK6R22Z27H6TVUR", False),
    ("did:key:zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF", False),  # valid, but not resolved
    ("did:web:example.com/path", False),
])
def test_a_resolvable_did_is_a_did_plc_or_a_did_web(value, expected):
    assert syntax.is_resolvable_did(value) is expected
    assert syntax.is_plc_did(value) is (expected and value.startswith("did:plc:"))


@pytest.mark.parametrize("value", [
    "alice.bsky.social", "jay.bsky.social", "8.cn", "name.t--t", "XX.LCS.MIT.EDU", "a.co", "xn--notarealidn.com",
    "john.test", "a" * 63 + ".com", ".".join(["a" * 63] * 3) + "." + "b" * 61,  # 253 characters
    "example.t", "laptop.local",
])
def test_a_handle_is_a_domain_name(value):
    assert syntax.is_handle(value)


@pytest.mark.parametrize("value", [
    "", "alice", "alice.", ".alice.test", "alice..test", "-alice.test", "alice-.test", "alice.test-",
    "alice.123", "alice.1test", "al ice.test", "alice_b.test", "alice.test\n", "a" * 64 + ".com",
    ".".join(["a" * 63] * 3) + "." + "b" * 62,  # 254 characters
    "did:plc:abc", "jo@hn.test", "💩.test", None,
])
def test_not_a_handle(value):
    assert not syntax.is_handle(value)


@pytest.mark.parametrize("value", [
    "app.bsky.feed.post", "com.atproto.repo.createRecord", "com.example.fooBar", "net.users.bob.ping",
    "a.b.c", "m.xn--masekowski-d0b.pl.foo", "one.two.three.four.five.six.seven.eight.nine.ten.eleven.twelve",
    "com.example.fooBar2", "cn.8.lex.stuff", "a-0.b-1.c", "com.long-thing1.cool.fooBarBaz",
    "com." + "a" * 63 + ".b" + "c" * 62,
    "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61 + "." + "e" * 63,  # 253 + 1 + 63 = 317 characters
])
def test_an_nsid_is_a_reversed_domain_then_a_name(value):
    assert syntax.is_nsid(value)


@pytest.mark.parametrize("value", [
    "", "com.example", "com", "com.example.", ".com.example.foo", "com..example.foo", "com.example.foo-bar",
    "com.example.3foo", "1com.example.foo", "-com.example.foo", "com.-example.foo", "com.example-.foo",
    "com.example.foo*", "com.example.foo.*", "com.exa mple.foo", "com.example.foo\n", "com.example/foo",
    "com." + "a" * 64 + ".foo", "com.example." + "f" * 64,
    "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62 + "." + "e",  # a 254-character authority
    None,
])
def test_not_an_nsid(value):
    assert not syntax.is_nsid(value)


@pytest.mark.parametrize("value", [
    "3jzfcijpj2z2a", "self", "example.com", "~1.2-3_", "dHJ1ZQ", "pre:fix", "_", "...", "a" * 512, "literal:self",
])
def test_a_record_key_is_1_to_512_url_safe_characters(value):
    assert syntax.is_rkey(value)


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "a b", "a#b", "a?b", "a%20b", "a" * 513, "ñ", "a\n", None])
def test_not_a_record_key(value):
    assert not syntax.is_rkey(value)


@pytest.mark.parametrize("value", ["3jzfcijpj2z2a", "7777777777777", "3zzzzzzzzzzzz", "2222222222222", "jzzzzzzzzzzzz"])
def test_a_tid_is_13_base32_sortable_characters(value):
    assert syntax.is_tid(value)


@pytest.mark.parametrize("value", [
    "3jzfcijpj2z2", "3jzfcijpj2z2aa", "3jzfcijpj2z21", "3JZFCIJPJ2Z2A", "kjzfcijpj2z2a", "zzzzzzzzzzzzz",
    "3jzf-ijpj2z2a", "", None,
])
def test_not_a_tid(value):
    assert not syntax.is_tid(value)


def test_a_tid_encodes_microseconds_then_a_clock_id_and_sorts_by_time():
    assert syntax.tid(0, 0) == "2222222222222"
    assert syntax.tid(0, 1) == "2222222222223"
    assert syntax.tid(1_700_000_000_000_000, 5) == "3ke6kg3wk2227"
    assert syntax.tid_time_us("3ke6kg3wk2227") == 1_700_000_000_000_000
    assert syntax.tid(2**53 - 1, 1023) == "bzzzzzzzzzzzz"  # the top bit stays 0
    assert sorted(syntax.tid(t, 1023 - t % 1024) for t in range(0, 10**12, 10**9 + 7)) == [
        syntax.tid(t, 1023 - t % 1024) for t in range(0, 10**12, 10**9 + 7)]


@pytest.mark.parametrize("time_us", [-1, 2**53])
def test_no_tid_outside_53_bits_of_time(time_us):
    with pytest.raises(ValueError):
        syntax.tid(time_us, 0)


def test_a_tid_takes_the_low_10_bits_of_the_clock_id():
    assert syntax.tid(5, 1024) == syntax.tid(5, 0)
    assert syntax.tid(5, 1025) == syntax.tid(5, 1)


def test_a_record_uri_names_a_did_a_collection_and_an_rkey():
    assert syntax.parse_record_uri(f"at://{PLC}/app.bsky.feed.post/3jzfcijpj2z2a") == (
        PLC, "app.bsky.feed.post", "3jzfcijpj2z2a")
    assert syntax.parse_record_uri("at://did:web:example.com/com.example.fooBar/self") == (
        "did:web:example.com", "com.example.fooBar", "self")
    assert syntax.RECORD_URI.fullmatch(f"at://{PLC}/app.bsky.feed.post/3jzfcijpj2z2a") is not None
    longest = "did:plc:" + "a" * 2040
    assert syntax.parse_record_uri(f"at://{longest}/app.bsky.feed.post/a") == (longest, "app.bsky.feed.post", "a")


@pytest.mark.parametrize("value", [
    f"at://{PLC}", f"at://{PLC}/app.bsky.feed.post", f"at://{PLC}/app.bsky.feed.post/", "at://alice.test/app.bsky.feed.post/a",
    f"at://{PLC}/app.bsky.feed.post/..", f"at://{PLC}/app.bsky.feed.post/a/b", f"at://{PLC}/app.bsky.feed.post/a?x=1",
    f"at://{PLC}/app.bsky.feed.post/a#frag", f"at://{PLC}/app.bsky/a", f"https://{PLC}/app.bsky.feed.post/a",
    f"at://{PLC}:/app.bsky.feed.post/a", f"at://{PLC}/app.bsky.feed.post/" + "a" * 513,
    f"AT://{PLC}/app.bsky.feed.post/a", f"at://{PLC}/app.bsky.feed.post/a\n", None,
    "at://did:plc:" + "a" * 2041 + "/app.bsky.feed.post/a",  # a DID over 2 KB
])
def test_not_a_record_uri(value):
    assert syntax.parse_record_uri(value) is None


@pytest.mark.parametrize("value, expected", [
    ("at://alice.test", ("alice.test", None, None)),
    (f"at://{PLC}", (PLC, None, None)),
    ("at://alice.test/app.bsky.graph.list", ("alice.test", "app.bsky.graph.list", None)),
    ("at://alice.test/app.bsky.graph.list/3jzfcijpj2z2a", ("alice.test", "app.bsky.graph.list", "3jzfcijpj2z2a")),
    ("at://did:key:zQ3shXjHe/app.bsky.feed.post/a", ("did:key:zQ3shXjHe", "app.bsky.feed.post", "a")),
])
def test_an_at_uri_names_an_account_and_optionally_a_collection_and_a_record(value, expected):
    assert syntax.parse_at_uri(value) == expected


@pytest.mark.parametrize("value", [
    "", "at://", "at:///app.bsky.feed.post", "at://alice", "at://alice.test/", "at://alice.test/app.bsky.feed.post/a/",
    "at://alice.test/app.bsky.feed.post/a/b", "at://alice.test/notansid/a", "at://alice.test/app.bsky.feed.post/.",
    "at://alice.test?x", "at://alice.test#y", "at://alice.test/app.bsky.feed.post/a b", "alice.test",
    "at://alice.test/app.bsky.feed.post/" + "a" * 8200, None,
])
def test_not_an_at_uri(value):
    assert syntax.parse_at_uri(value) is None


IMAGE = {"alt": "", "image": {"$type": "blob"}}


@pytest.mark.parametrize("embed, expected", [
    ({"$type": "app.bsky.embed.images", "images": [IMAGE]}, True),
    ({"$type": "app.bsky.embed.video", "video": {}}, True),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.images", "images": [IMAGE]}}, True),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.video"}}, True),
    # an images embed with no images shows nothing
    ({"$type": "app.bsky.embed.images", "images": []}, False),
    ({"$type": "app.bsky.embed.images"}, False),
    ({"$type": "app.bsky.embed.images", "images": {"0": IMAGE}}, False),
    ({"$type": "app.bsky.embed.images", "images": "image"}, False),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.images", "images": []}}, False),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.external"}}, False),
    ({"$type": "app.bsky.embed.recordWithMedia", "media": [IMAGE]}, False),
    ({"$type": "app.bsky.embed.recordWithMedia",
      "media": {"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": "app.bsky.embed.video"}}}, False),
    ({"$type": "app.bsky.embed.external", "external": {}}, False),
    ({"$type": "app.bsky.embed.record", "record": {}}, False),
    ({"$type": ["app.bsky.embed.video"]}, False),
    ({"$type": {}}, False),
    (None, False), ("app.bsky.embed.video", False), ([], False),
])
def test_media_is_images_or_a_video_directly_or_in_a_quote(embed, expected):
    assert syntax.has_media(embed) is expected


@pytest.mark.parametrize("moment, timespec, expected", [
    (datetime.datetime(2025, 3, 1, 12, 1, tzinfo=datetime.timezone.utc), "auto", "2025-03-01T12:01:00Z"),
    (datetime.datetime(2025, 3, 1, 12, 1, 0, 123456, tzinfo=datetime.timezone.utc), "auto",
     "2025-03-01T12:01:00.123456Z"),
    (datetime.datetime(2025, 3, 1, 12, 1, 0, 123456, tzinfo=datetime.timezone.utc), "milliseconds",
     "2025-03-01T12:01:00.123Z"),
    (datetime.datetime(2025, 3, 1, 12, 1, 0, tzinfo=datetime.timezone.utc), "milliseconds", "2025-03-01T12:01:00.000Z"),
    (datetime.datetime(2025, 3, 1, 14, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2))), "auto",
     "2025-03-01T12:01:00Z"),
    (datetime.datetime(2025, 3, 1, 12, 1), "auto", "2025-03-01T12:01:00Z"),  # naive: the store's UTC
])
def test_a_utc_time_is_written_rfc_3339_with_a_z(moment, timespec, expected):
    assert syntax.utc_text(moment, timespec) == expected


def test_the_collection_names():
    assert (syntax.POST, syntax.LIKE, syntax.REPOST, syntax.FOLLOW, syntax.BLOCK, syntax.PROFILE) == (
        "app.bsky.feed.post", "app.bsky.feed.like", "app.bsky.feed.repost", "app.bsky.graph.follow",
        "app.bsky.graph.block", "app.bsky.actor.profile")
    assert all(syntax.is_nsid(name) for name in (
        syntax.POST, syntax.LIKE, syntax.REPOST, syntax.FOLLOW, syntax.BLOCK, syntax.PROFILE, syntax.FEED_GENERATOR,
        syntax.LIST, syntax.STARTER_PACK, syntax.EMBED_IMAGES, syntax.EMBED_VIDEO, syntax.EMBED_RECORD_WITH_MEDIA))
