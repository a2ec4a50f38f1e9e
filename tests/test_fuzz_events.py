"""Hostile firehose events, found by property-based testing: any field of any event mutated (wrong
JSON types, lone surrogates, huge integers, deep nesting, oversized strings, unknown $types, broken
bytes). Every event ends as rows the store can take or as one reject with a reason, and a replay of
a mixed stream leaves exactly what the ordinary events alone leave.

`make test` runs a fixed, fast budget (the same examples every run); `make fuzz` sets
HYPOTHESIS_PROFILE=fuzz for a long, randomised run (FUZZ_EXAMPLES examples, 5,000 by default) and
prints what it tried.
"""

import collections
import contextlib
import copy
import datetime
import io
import os
import random
import sys

import orjson
import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apps.indexer.generator import EventGenerator
from apps.indexer.rows import COLUMNS, REASONS, RowBatch
from tests.support.firehose_tables import STATE_QUERIES, expected_state
from tests.support.stores import BOTH_STORES, query

settings.register_profile(
    "fast", max_examples=200, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", 5_000)), database=None, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE_NAME = os.environ.get("HYPOTHESIS_PROFILE", "fast")
PROFILE = settings.get_profile(PROFILE_NAME)
# A replay example costs a store round trip: far fewer of them.
REPLAY_PROFILE = settings(PROFILE, max_examples=max(4, PROFILE.max_examples // 200))

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

MAX_EVENT_BYTES = 65_536
UTC = datetime.timezone.utc

# --- events as they come: generated ones, and the shapes of real ones (copied, DIDs made up) ---------

A = "did:plc:shapes000000000000000000a"
B = "did:plc:shapes000000000000000000b"
T = 1_783_000_000_000_000
POST_URI = f"at://{B}/app.bsky.feed.post/3mmoodizfwc2j"
REF = {"cid": "bafyreiaxf7tgbfydx3465sckitq6v564thxe2wwydbi7cwxbxvgssje3em", "uri": POST_URI}
BLOB = {"$type": "blob", "ref": {"$link": "bafkreieajxclqzwk2mczx7hxmoboqpuiveqlbm35gsda5xlaqfmlryu4ri"},
        "mimeType": "image/jpeg", "size": 720303}


def _commit(operation, collection, rkey, record=None):
    body = {"rev": "3mmoojp7vgo2g", "operation": operation, "collection": collection, "rkey": rkey}
    if record is not None:
        body["record"] = {"$type": collection, "createdAt": "2026-05-25T14:23:28.778Z", **record}
        body["cid"] = "bafyreidqpc7si3dbimffi64lz3xsx2qt45ip7rpna2qpslcddp23itjjzm"
    return {"did": A, "time_us": T, "kind": "commit", "commit": body}


REAL_SHAPES = [
    _commit("create", "app.bsky.feed.like", "3mmoojp7etg2g", {"subject": REF}),
    _commit("create", "app.bsky.feed.post", "3mmoojp4cd223", {
        "langs": ["en"], "reply": {"parent": REF, "root": REF}, "text": "Try @bob.test for a good time #rsv",
        "facets": [
            {"index": {"byteStart": 4, "byteEnd": 13},
             "features": [{"$type": "app.bsky.richtext.facet#mention", "did": B}]},
            {"index": {"byteStart": 30, "byteEnd": 34},
             "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "rsv"}]},
        ],
        "embed": {"$type": "app.bsky.embed.recordWithMedia", "record": {"$type": "app.bsky.embed.record", "record": REF},
                  "media": {"$type": "app.bsky.embed.images", "images": [{"alt": "", "image": BLOB,
                                                                          "aspectRatio": {"width": 3, "height": 4}}]}},
    }),
    _commit("create", "app.bsky.feed.post", "3mmoojp4cd224", {
        "text": "a link", "embed": {"$type": "app.bsky.embed.external", "external": {
            "uri": "https://example.com/a", "title": "A", "description": "", "thumb": BLOB}}}),
    _commit("create", "app.bsky.feed.post", "3mmoojp4cd225", {
        "text": "", "embed": {"$type": "app.bsky.embed.video", "video": {**BLOB, "mimeType": "video/mp4"}}}),
    _commit("create", "app.bsky.feed.repost", "3mmoojpbade2i", {"subject": REF}),
    _commit("create", "app.bsky.graph.follow", "3mmoojocxvr2s", {"subject": B}),
    _commit("create", "app.bsky.graph.block", "3mmoojpduny2w", {"subject": B}),
    _commit("update", "app.bsky.actor.profile", "self", {
        "avatar": BLOB, "banner": BLOB, "description": "Loki stan 🔞", "displayName": "Multiversal Lokis Unit🔞",
        "pinnedPost": REF}),
    _commit("delete", "org.hypercerts.claim.activity", "3mmontn3gnc2e"),
    _commit("delete", "app.bsky.feed.post", "3mmoojp4cd223"),
    _commit("update", "place.stream.broadcast.origin", f"{A}::did:web:prod-sea0.stream.place", {
        "broadcaster": "did:web:stream.place", "streamer": A, "updatedAt": "2026-05-25T14:23:29.807Z"}),
    {"did": A, "time_us": T, "kind": "identity", "identity": {"did": A, "seq": 30340180350,
                                                             "time": "2026-05-25T14:23:29.950Z"}},
    {"did": A, "time_us": T, "kind": "identity", "identity": {"did": A, "seq": 30340180350, "handle": "Alice.Test",
                                                             "time": "2026-05-25T14:23:29.950Z"}},
    {"did": A, "time_us": T, "kind": "account", "account": {"active": True, "did": A, "seq": 30340180351,
                                                           "time": "2026-05-25T14:23:29.950Z"}},
    {"did": A, "time_us": T, "kind": "account", "account": {"active": False, "did": A, "seq": 30340180352,
                                                           "status": "takendown", "time": "2026-05-25T14:23:29.950Z"}},
]


# Every kind the generator makes, as JSON: each draw decodes a fresh copy to mutate.
GENERATED = [orjson.dumps(event) for event in EventGenerator(seed=5, accounts=50).events(1000)]

ordinary_event = st.one_of(st.sampled_from(REAL_SHAPES).map(copy.deepcopy),
                           st.sampled_from(GENERATED).map(orjson.loads))

# --- hostile values ----------------------------------------------------------------------------------


class Raw:
    """JSON text that no Python value serialises to (lone surrogates, huge numbers, deep nesting)."""

    def __init__(self, text):
        self.text = text


def encode(value):
    """`value` as JSON bytes, with each Raw spliced in as it is."""
    if isinstance(value, Raw):
        return value.text
    if type(value) is dict:
        return b"{" + b",".join(orjson.dumps(key) + b":" + encode(item) for key, item in value.items()) + b"}"
    if type(value) is list:
        return b"[" + b",".join(encode(item) for item in value) + b"]"
    return orjson.dumps(value)


FIELDS = ["did", "time_us", "kind", "commit", "identity", "account", "collection", "rkey", "operation", "record",
          "cid", "rev", "text", "langs", "createdAt", "embed", "reply", "facets", "parent", "root", "uri", "subject",
          "$type", "media", "images", "displayName", "description", "avatar", "banner", "ref", "$link", "handle",
          "status", "active", "seq", "time"]
TYPES = ["app.bsky.embed.images", "app.bsky.embed.video", "app.bsky.embed.recordWithMedia", "app.bsky.embed.external",
         "app.bsky.embed.record", "blob", "app.bsky.feed.post", "com.example.unknown#thing", "", "$type"]
LOOKALIKES = ["did:plc:hostile0000000000000000000", "did:web:example.com", "at://did:plc:x/app.bsky.feed.post/3l",
              "at://did:plc:hostile0000000000000000000/app.bsky.feed.post/3lpost000001a", "https://bsky.app/post/1",
              "2026-05-25T14:23:28.778Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-23:59", "2026-13-45",
              "create", "update", "delete", "commit", "identity", "account", "self", "..", ".", "a/b", "true",
              "1779719009132431", "\x00", "\u202eevil", "🔞" * 3, "ı̇İ"]

scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40), st.sampled_from(LOOKALIKES + TYPES),
    st.integers(1, 200_000).map(lambda size: "x" * size),  # up to 3x the event limit
)
json_value = st.recursive(
    scalar,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
typed_object = st.builds(lambda kind, rest: {**rest, "$type": kind}, st.sampled_from(TYPES) | json_value,
                         st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=3))
# Around the record limit (32), Python's recursion limit (1000) and orjson's (1024).
deep_value = st.sampled_from([31, 33, 200, 990, 998, 1000, 1010, 1020, 1022, 1023, 1025, 5000]).flatmap(
    lambda depth: st.sampled_from([b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth]))
raw_value = st.one_of(
    st.sampled_from([b'"\\ud800"', b'"\\ud800x"', b'"x\\udc00"', b'"\\udbff\\udbff"', b"NaN", b"-Infinity", b"1e400",
                     b"-0", b"1.5e-400", b"\"\\u0000\""]),
    st.integers(20, 400).map(lambda digits: b"9" * digits),  # beyond 64 bits: orjson makes it a float
    st.integers(20, 400).map(lambda digits: b"-1" + b"0" * digits),
    deep_value,
).map(Raw)
# The plainest wrong types, drawn often: what a record made without lexicon validation holds.
wrong_type = st.sampled_from([None, True, False, 0, -1, 1.5, 2**63, "", "x", [], ["x"], [[]], {}, {"$type": []}]).map(
    copy.deepcopy)  # a fresh list or object each time: a later mutation may change it
hostile = st.one_of(wrong_type, json_value, typed_object, raw_value)

# --- mutations ---------------------------------------------------------------------------------------

# The fields the indexer reads, by where they are; mutations aim at them more than at the rest.
EVENT_FIELDS = [("did",), ("time_us",), ("kind",), ("commit",), ("identity",), ("account",)]
COMMIT_FIELDS = [("commit", "collection"), ("commit", "rkey"), ("commit", "operation"), ("commit", "record"),
                 ("commit", "cid"), ("commit", "rev"), ("commit", "record", "$type"),
                 ("commit", "record", "createdAt")]
RECORD_FIELDS = {
    "app.bsky.feed.post": [
        ("text",), ("langs",), ("embed",), ("embed", "$type"), ("embed", "media"), ("embed", "media", "$type"),
        ("embed", "images"), ("embed", "record"), ("reply",), ("reply", "parent"), ("reply", "root"),
        ("reply", "parent", "uri"), ("reply", "root", "uri"), ("facets",), ("tags",)],
    "app.bsky.feed.like": [("subject",), ("subject", "uri"), ("subject", "cid")],
    "app.bsky.feed.repost": [("subject",), ("subject", "uri"), ("subject", "cid")],
    "app.bsky.graph.follow": [("subject",)],
    "app.bsky.graph.block": [("subject",)],
    "app.bsky.actor.profile": [("displayName",), ("description",), ("avatar",), ("banner",), ("avatar", "ref"),
                               ("avatar", "ref", "$link"), ("avatar", "cid"), ("banner", "ref", "$link"),
                               ("pinnedPost",)],
}
BODY_FIELDS = {"identity": [("handle",), ("seq",), ("time",), ("did",)],
               "account": [("active",), ("status",), ("seq",), ("time",), ("did",)]}


def fields_of(event):
    """Paths to the fields the indexer reads in an event of `event`'s kind and collection."""
    paths = list(EVENT_FIELDS)
    kind = event.get("kind")
    if kind == "commit" and type(event.get("commit")) is dict:
        paths += COMMIT_FIELDS
        collection = event["commit"].get("collection")
        if type(collection) is str:
            paths += [("commit", "record", *path) for path in RECORD_FIELDS.get(collection, ())]
    elif type(kind) is str and kind in BODY_FIELDS:
        paths += [(kind, *path) for path in BODY_FIELDS[kind]]
    return paths


def put(event, path, value):
    """Set the field at `path`, making the objects on the way when they are missing or not objects."""
    target = event
    for key in path[:-1]:
        if type(target.get(key)) is not dict:
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def containers(value, path=()):
    """Every (path, object or list) inside `value`, the value itself first."""
    if type(value) is dict:
        items = value.items()
    elif type(value) is list:
        items = enumerate(value)
    else:
        return []
    found = [(path, value)]
    for key, item in items:
        found.extend(containers(item, (*path, key)))
    return found


@st.composite
def mutated(draw, event):
    """`event` (a dict, changed in place) with one to three fields replaced (mostly fields the indexer
    reads), removed or added, as bytes; now and then the bytes broken too."""
    for _ in range(draw(st.integers(1, 3))):
        if type(event) is not dict:
            break
        if draw(st.integers(0, 2)):
            value = draw(st.one_of(wrong_type, wrong_type, deep_value.map(Raw), hostile))
            put(event, draw(st.sampled_from(fields_of(event))), value)
            continue
        places = containers(event)
        path, container = draw(st.sampled_from(places))
        keys = list(container) if type(container) is dict else list(range(len(container)))
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if not path and action == "replace" and draw(st.integers(0, 9)) == 0:
            event = draw(hostile)  # the event itself is not an object
            break
        if type(container) is dict and (action == "add" or not keys):
            container[draw(st.sampled_from(FIELDS) | st.text(max_size=8))] = draw(hostile)
        elif keys and action == "remove":
            del container[draw(st.sampled_from(keys))]
        elif keys:
            container[draw(st.sampled_from(keys))] = draw(hostile)
    raw = encode(event)
    if draw(st.integers(0, 19)) == 0:
        cut = draw(st.integers(0, len(raw)))
        junk = draw(st.sampled_from([b"", b"\xff\xfe", b"\xed\xa0\x80", b"\x00", b"}", b"]]]", b'"', b"garbage"]))
        raw = raw[:cut] + junk + raw[cut + draw(st.integers(0, 3)):]
    # One line each: JSON escapes newlines in strings, so only a broken event could hold one.
    raw = raw.replace(b"\n", b" ").replace(b"\r", b" ")
    return raw if raw.strip() else b"x"


# --- what the store takes ----------------------------------------------------------------------------


def _text(value):
    if type(value) is not str:
        return False
    value.encode()  # raises on lone surrogates, which neither store can take
    return True


def _int(low, high):
    return lambda value: type(value) is int and low <= value < high


def _time(value):
    return (type(value) is datetime.datetime and value.tzinfo is not None
            and datetime.datetime(1900, 1, 1, tzinfo=UTC) <= value < datetime.datetime(2300, 1, 1, tzinfo=UTC))


def _texts(value):
    return type(value) is list and all(_text(item) for item in value)


_FLAG, _I64 = _int(0, 2), _int(-(2**63), 2**63)
STORE_TYPES = {
    "repo_records": (_text, _text, _text, lambda operation: operation in ("create", "update", "delete"), _text,
                     _time, _FLAG, _I64),
    "posts": (_text, _text, _text, _time, _text, _texts, _FLAG, _text, _text, _FLAG, _I64),
    "likes": (_text,) * 6 + (_time, _FLAG, _I64),
    "reposts": (_text,) * 6 + (_time, _FLAG, _I64),
    "follows": (_text, _text, _text, _time, _FLAG, _I64),
    "blocks": (_text, _text, _text, _time, _FLAG, _I64),
    "profiles": (_text,) * 6 + (_time, _FLAG, _I64),
    "account_statuses": (_text, _FLAG, _text, _I64, _time, _I64),
    "identities": (_text, _text, _I64, _time, _I64),
    "firehose_rejects": (_time, lambda reason: reason in REASONS, _text, _text),
}
assert STORE_TYPES.keys() == COLUMNS.keys()


def assert_store_takes(table, row):
    checks = STORE_TYPES[table]
    assert len(row) == len(checks) and all(check(value) for check, value in zip(checks, row)), (table, row)


# --- properties --------------------------------------------------------------------------------------

TALLY = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    """What a `make fuzz` run tried, printed at its end."""
    yield
    if PROFILE_NAME == "fuzz":
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(TALLY.items()) if reason[0] != "_")
        with request.config.pluginmanager.get_plugin("capturemanager").global_and_fixture_disabled():
            print(f"\nfuzz: {TALLY['_tried']} events tried, {TALLY['_indexed']} indexed, "
                  f"rejected by reason: {reasons}")


@contextlib.contextmanager
def default_recursion_limit():
    """Python's default recursion limit, which the consumer runs with: Hypothesis raises it while a test
    runs, and would hide a too-deep value reaching repr()."""
    raised = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        yield
    finally:
        sys.setrecursionlimit(raised)


def add_one(batch, raw):
    """Add `raw` to `batch`: the reason it was rejected for, or None when it was indexed."""
    before = {table: len(rows) for table, rows in batch.rows.items()}
    with default_recursion_limit():
        batch.add(raw)
    grown = {table: len(rows) - before[table] for table, rows in batch.rows.items() if len(rows) != before[table]}
    for table, count in grown.items():
        for row in batch.rows[table][-count:]:
            assert_store_takes(table, row)
    TALLY["_tried"] += 1
    if "firehose_rejects" in grown:
        assert grown == {"firehose_rejects": 1}, grown  # rejected whole: none of its rows are kept
        reason = batch.rows["firehose_rejects"][-1][1]
        assert reason in REASONS and reason != "internal_error", batch.rows["firehose_rejects"][-1]
        TALLY[reason] += 1
        return reason
    assert grown, raw  # neither rows nor a reject: the event vanished
    TALLY["_indexed"] += 1
    return None


def _spoiled_post(embed=None, **fields):
    """(True, bytes) of a real-shaped post with `embed` and the top-level `fields` given."""
    event = copy.deepcopy(REAL_SHAPES[1])
    event["commit"]["record"]["embed"] = embed
    return True, encode({**event, **fields})


# (spoiled, the event's bytes): two in three events spoiled.
some_events = st.lists(st.tuples(st.integers(0, 2).map(bool), ordinary_event).flatmap(
    lambda pick: st.tuples(st.just(pick[0]), mutated(pick[1]) if pick[0] else st.just(encode(pick[1])))),
    min_size=1, max_size=20)


@given(some_events)
@example([_spoiled_post({"$type": []}), _spoiled_post({"$type": {}}),  # measured: these stopped indexing
          _spoiled_post({"$type": "app.bsky.embed.recordWithMedia", "media": {"$type": [[]]}})])
@example([_spoiled_post(did=Raw(b"[" * 1000 + b"]" * 1000)),
          _spoiled_post(time_us=Raw(b'{"a":' * 1000 + b"1" + b"}" * 1000))])
@settings(PROFILE)
def test_every_event_ends_as_rows_the_store_takes_or_as_one_reject_with_a_reason(events):
    batch = RowBatch(MAX_EVENT_BYTES)
    for spoiled, raw in events:
        reason = add_one(batch, raw)
        assert spoiled or reason is None, (reason, raw)
    assert batch.events == len(events)
    assert sum(batch.rejects.values()) == len(batch.rows["firehose_rejects"])
    orjson.dumps(batch.rows)  # what the embedded store's insert does with them


# --- replays -----------------------------------------------------------------------------------------


def replay(tmp_path, raws):
    path = tmp_path / "stream.jsonl"
    path.write_bytes(b"".join(raw + b"\n" for raw in raws))
    out = io.StringIO()
    call_command("consume_firehose", "--replay", str(path), stdout=out)
    return out.getvalue().strip()


def summary(indexed, rejects):
    rejected = sum(rejects.values())
    detail = ", ".join(f"{reason}: {count}" for reason, count in sorted(rejects.items()))
    return f"indexed {indexed} events, rejected {rejected}" + (f" ({detail})" if rejected else "")


def state_of(dids):
    """The replay state queries' rows whose account is one of `dids`."""
    account_column = (1, 0, 0, 0)  # repo, actor_did, did, did
    return tuple([row for row in query(sql) if row[column] in dids]
                 for sql, column in zip(STATE_QUERIES, account_column))


def as_stranger(event, number):
    """`event` under an account of its own, so whatever it does cannot touch an ordinary one's rows."""
    event["did"] = f"did:plc:stranger{number:016d}"
    return event


@given(seed=st.integers(0, 2**32), size=st.integers(20, 120),
       strangers=st.lists(st.tuples(ordinary_event, st.integers(0, 99)), min_size=1, max_size=40),
       shuffle=st.randoms(use_true_random=False), data=st.data())
@settings(REPLAY_PROFILE)
def test_a_replay_of_a_mixed_stream_leaves_exactly_what_the_ordinary_events_leave(
        tmp_path, seed, size, strangers, shuffle, data):
    for table in COLUMNS:
        query(f"TRUNCATE TABLE {table}")
    ordinary = list(EventGenerator(seed=seed, accounts=40).events(size))
    lines = [(None, orjson.dumps(event)) for event in ordinary]
    lines += [("hostile", data.draw(mutated(as_stranger(event, number)))) for event, number in strangers]
    shuffle.shuffle(lines)
    batch = RowBatch(1_000_000)  # the command's own limit (JETSTREAM_MAX_EVENT_BYTES)
    outcomes = [add_one(batch, raw) for _, raw in lines]
    assert all(reason is None for (kind, _), reason in zip(lines, outcomes) if kind is None)
    rejects = collections.Counter(reason for reason in outcomes if reason is not None)
    assert replay(tmp_path, [raw for _, raw in lines]) == summary(len(lines) - sum(rejects.values()), rejects)
    assert query("SELECT reason, count() FROM firehose_rejects GROUP BY reason ORDER BY reason") == sorted(
        rejects.items())
    assert state_of({event["did"] for event in ordinary}) == expected_state(ordinary)


# The 30,000-event regression: ~200 records with a field of the wrong type, each with what must happen
# to it (a reason, or None: sanitised and indexed).
WRONG_TYPES = {
    "app.bsky.feed.post": [
        ("text", {"a": 1}, "invalid_record"), ("text", 42, "invalid_record"), ("langs", "en", None),
        ("langs", {"en": True}, None), ("createdAt", [], None), ("embed", {"$type": []}, None),
        ("embed", {"$type": {}}, None), ("embed", "images", None), ("reply", [], "invalid_record"),
        ("reply", {"parent": "at://x", "root": None}, "invalid_record"), ("facets", {"oops": 1}, None),
    ],
    "app.bsky.feed.like": [
        ("subject", POST_URI, "invalid_record"), ("subject", {"uri": 5}, "invalid_record"),
        ("subject", {"uri": "nope"}, "invalid_at_uri"), ("createdAt", 17, None),
    ],
    "app.bsky.feed.repost": [("subject", [REF], "invalid_record")],
    "app.bsky.graph.follow": [("subject", {"did": B}, "invalid_did"), ("subject", [B], "invalid_did")],
    "app.bsky.graph.block": [("subject", 0, "invalid_did")],
    "app.bsky.actor.profile": [
        ("displayName", [], "invalid_record"), ("avatar", "bafkrei", "invalid_record"),
        ("description", 7, "invalid_record"),
    ],
    "other": [("", ["not", "a", "record"], "invalid_record"), ("", "record", "invalid_record")],
    "delete": [("rkey", 5, "invalid_rkey"), ("operation", ["delete"], "invalid_operation"),
               ("collection", {}, "invalid_collection")],
    "identity": [("handle", 5, "invalid_identity"), ("seq", "7", "invalid_identity"), ("time", {}, None),
                 ("", [], "invalid_identity")],
    "account": [("active", "true", "invalid_account"), ("status", {}, "invalid_account"),
                ("seq", 1.5, "invalid_account")],
    "event": [("time_us", "1783000000000000", "invalid_time_us"), ("did", 5, "invalid_did"),
              ("kind", [], "unknown_kind"), ("commit", "x", "invalid_commit")],
}


def with_wrong_type(event, rng):
    """`event` with one field's type made wrong; what must happen to it."""
    kind = event["kind"]
    if rng.random() < 0.15:
        field, value, reason = copy.deepcopy(rng.choice(WRONG_TYPES["event"]))
        if field != "commit" or kind == "commit":
            event[field] = value
            return reason
    if kind != "commit":
        holder, body, choices = event, kind, WRONG_TYPES[kind]
    elif event["commit"]["operation"] == "delete":
        holder, body, choices = event, "commit", WRONG_TYPES["delete"]
    else:
        holder, body = event["commit"], "record"
        choices = WRONG_TYPES.get(event["commit"]["collection"], WRONG_TYPES["other"])
    field, value, reason = copy.deepcopy(rng.choice(choices))
    if field:
        holder[body][field] = value
    else:  # the record, or the identity/account body, itself
        holder[body] = value
    return reason


def test_a_replay_of_30000_events_with_200_wrong_typed_records_indexes_every_other_event(tmp_path):
    events = list(EventGenerator(seed=11, accounts=2000).events(30_000))
    rng = random.Random(11)
    spoiled = {index: with_wrong_type(events[index], rng) for index in rng.sample(range(len(events)), 200)}
    embeds = [events[index]["commit"]["record"].get("embed") for index in spoiled
              if type(events[index].get("commit")) is dict and type(events[index]["commit"].get("record")) is dict]
    assert {"$type": []} in embeds and {"$type": {}} in embeds  # the case that stopped indexing
    rejects = collections.Counter(reason for reason in spoiled.values() if reason is not None)
    assert 100 < sum(rejects.values()) < 200
    output = replay(tmp_path, [orjson.dumps(event) for event in events])
    assert output == summary(len(events) - sum(rejects.values()), rejects)
    kept = [event for index, event in enumerate(events) if spoiled.get(index) is None]
    assert tuple(query(sql) for sql in STATE_QUERIES) == expected_state(kept)
