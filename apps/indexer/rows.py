"""Jetstream events to table rows: the consumer's hot path, with no database in it.

A RowBatch takes raw events (bytes of JSON) one at a time and appends plain tuples to one list per
table, in each table's COLUMNS order, ready for `insert_rows`. An event that cannot be indexed is
rejected whole (none of its rows are kept) with a reason from REASONS (whose metric series exist
from the start, apps/indexer/metrics.py), and its raw bytes go to the dead-letter table. Every check
is a type test or a compiled regex: this runs ~30,000 times a second.

Any field of any record can hold any JSON type (a PDS may skip lexicon validation), so every field
read is type-tested before use. The rule: a field whose value the row stores as content or as a
key (text, a subject, a reply or blob reference, a handle, a status) rejects the event when its type
or shape is wrong, since a stand-in would show users something the author never wrote; a field
that only qualifies the record is sanitised to what its absence means.

| field                                       | wrong type or shape              |
|---------------------------------------------|----------------------------------|
| the event itself (not an object)            | reject not_an_object             |
| time_us (an int in 2009..2200; bools, floats and huge integers are not) | reject invalid_time_us |
| did                                         | reject invalid_did               |
| kind (commit, identity, account)            | reject unknown_kind              |
| commit (an object)                          | reject invalid_commit            |
| commit.collection (an NSID)                 | reject invalid_collection        |
| commit.rkey                                 | reject invalid_rkey              |
| commit.operation (create, update, delete)   | reject invalid_operation         |
| commit.record (an object, on create/update) | reject invalid_record            |
| commit.record nested deeper than 32         | reject too_deep                  |
| commit.cid, commit.rev, unknown fields      | not read: any type               |
| post text (a string; absent: "")            | reject invalid_record            |
| post reply (an object or absent/null)       | reject invalid_record            |
| post reply.parent/root (strong ref or absent/null) | reject invalid_record, invalid_at_uri |
| post langs (a list)                         | sanitised: not a list -> [], non-string items dropped |
| post embed, embed.$type, embed.media.$type  | sanitised: not an object, or a $type not a string -> no media |
| post facets, other record fields            | not read (kept in repo_records as they came) |
| like/repost subject (a strong ref: object with an at-uri) | reject invalid_record, invalid_at_uri |
| follow/block subject (a DID string)         | reject invalid_did               |
| profile displayName, description (a string; absent: "") | reject invalid_record |
| profile avatar, banner (a blob or absent/null) | reject invalid_record         |
| createdAt, identity/account time (ISO 8601, 1970..2200) | sanitised: the event time |
| identity (an object)                        | reject invalid_identity          |
| identity handle (a string of <= 253; absent: "") | reject invalid_identity     |
| account (an object)                         | reject invalid_account           |
| account active (a boolean)                  | reject invalid_account           |
| account status (a string of <= 64; absent: "") | reject invalid_account        |
| identity/account seq (an int in 0..2^63; absent: 0) | reject invalid_identity/account |

Whatever the JSON: lone surrogates, NaN, numbers that overflow a double and invalid UTF-8 are
malformed_json (orjson refuses them); integers beyond 64 bits arrive as floats (so fail the int
checks above); an event over `max_event_bytes` is oversized; nesting beyond orjson's 1024 levels is
too_deep. A reject's detail never repr()s a container (a deep one overflows the stack). Should
mapping one event raise anyway, RowBatch.add rejects it as internal_error rather than stop the
consumer; an event's rows are appended only once all of them are made, so none of it is kept.
"""

import datetime
import logging
import re

import orjson

from skyline.atproto.syntax import BLOCK, FOLLOW, LIKE, POST, PROFILE, REPOST, has_media
from skyline.atproto.syntax import DID as _DID
from skyline.atproto.syntax import NSID as _NSID
from skyline.atproto.syntax import RKEY as _RKEY

logger = logging.getLogger(__name__)

UTC = datetime.timezone.utc
_timedelta = datetime.timedelta
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
# DateTime64(6) holds 1900..2299; a createdAt outside a sane window falls back to the event time.
EARLIEST = datetime.datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime.datetime(2200, 1, 1, tzinfo=UTC)
# time_us must be a plausible unix-microsecond time (2009..2200), not a relay seq or garbage.
MIN_TIME_US = 1_230_768_000_000_000
MAX_TIME_US = 7_258_118_400_000_000

MAX_RECORD_DEPTH = 32
MAX_DEAD_LETTER_BYTES = 65_536
MAX_HANDLE_LENGTH = 253
MAX_STATUS_LENGTH = 64
MAX_INT64 = 2**63

COLUMNS = {
    "repo_records": ("repo", "collection", "rkey", "operation", "record_json", "created_at", "deleted", "time_us"),
    "posts": ("did", "rkey", "uri", "created_at", "text", "langs", "has_embedded_media", "parent_uri", "root_uri",
              "deleted", "time_us"),
    "likes": ("actor_did", "rkey", "subject_uri", "subject_did", "subject_collection", "subject_rkey",
              "created_at", "deleted", "time_us"),
    "reposts": ("actor_did", "rkey", "subject_uri", "subject_did", "subject_collection", "subject_rkey",
                "created_at", "deleted", "time_us"),
    "follows": ("actor_did", "rkey", "target_did", "created_at", "deleted", "time_us"),
    "blocks": ("actor_did", "rkey", "target_did", "created_at", "deleted", "time_us"),
    "profiles": ("did", "rkey", "display_name", "description", "avatar_cid", "banner_cid", "created_at", "deleted",
                 "time_us"),
    "account_statuses": ("did", "active", "status", "seq", "changed_at", "time_us"),
    "identities": ("did", "handle", "seq", "changed_at", "time_us"),
    "firehose_rejects": ("received_at", "reason", "detail", "raw"),
}

REASONS = (
    "malformed_json",
    "oversized",
    "not_an_object",
    "invalid_did",
    "invalid_time_us",
    "unknown_kind",
    "invalid_commit",
    "invalid_operation",
    "invalid_collection",
    "invalid_rkey",
    "invalid_record",
    "invalid_at_uri",
    "too_deep",
    "invalid_identity",
    "invalid_account",
    "undecodable_frame",
    "internal_error",
    "store_refused",  # counted by the writer, one per row the store would not take
)

# Collections that get a label of their own in the metrics; the rest (any NSID can appear) are "other".
METRIC_COLLECTIONS = frozenset({
    POST, LIKE, REPOST, FOLLOW, BLOCK, PROFILE, "app.bsky.graph.listitem", "app.bsky.graph.list",
    "app.bsky.feed.threadgate", "app.bsky.feed.postgate", "app.bsky.feed.generator", "app.bsky.graph.starterpack",
    "app.bsky.graph.listblock", "app.bsky.actor.status",
})


def _shown(value):
    """A short, safe description of a field's unexpected value for a reject's detail."""
    if type(value) is dict or type(value) is list:
        return f"{type(value).__name__} of {len(value)}"
    return repr(value[:200] if type(value) is str else value)[:200]


class Rejected(Exception):
    def __init__(self, reason, detail=""):
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def _strip_cids(value, depth):
    """Remove every object key named "cid" from `value` at any depth, in place (strong refs keep
    their uri; blob `$link`s stay), refusing trees nested deeper than MAX_RECORD_DEPTH. The record
    is the one just parsed, read by nothing after this."""
    if depth > MAX_RECORD_DEPTH:
        raise Rejected("too_deep", f"record nested deeper than {MAX_RECORD_DEPTH}")
    depth += 1
    if type(value) is dict:
        if "cid" in value:
            del value["cid"]
        items = value.values()
    else:
        items = value
    for item in items:
        if type(item) is dict or type(item) is list:
            _strip_cids(item, depth)


def record_json(record):
    """What repo_records keeps of a record: compact, keys sorted, strong-ref CIDs stripped (from
    `record` itself: read what the rows need of it first)."""
    _strip_cids(record, 1)
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


def created_at(value, fallback):
    """A record's createdAt as an aware datetime, or `fallback` (the event time) when it is not a
    sane ISO 8601 time."""
    if type(value) is str:
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return fallback
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        if EARLIEST <= parsed <= LATEST:
            return parsed
    return fallback


def _subject_parts(subject):
    """(uri, did, collection, rkey) of a strong ref's at-uri."""
    if type(subject) is not dict:
        raise Rejected("invalid_record", "subject is not a strong ref")
    uri = subject.get("uri")
    if type(uri) is not str:
        raise Rejected("invalid_record", "subject.uri is not a string")
    parts = record_uri_parts(uri)
    if parts is None:
        raise Rejected("invalid_at_uri", uri[:200])
    return (uri, *parts)


def record_uri_parts(uri):
    """(did, collection, rkey) of a record's at-uri, or None: what RECORD_URI matches, checked
    part by part with the remembered DIDs and NSIDs (most subjects name a known account and one
    of a few collections)."""
    if not uri.startswith("at://"):
        return None
    parts = uri[5:].split("/")
    if len(parts) != 3:
        return None
    did, collection, rkey = parts
    if not (is_did(did) and is_nsid(collection) and _RKEY.fullmatch(rkey)):
        return None
    return did, collection, rkey


class _Remembered:
    """A regex's verdicts on strings that recur (DIDs, NSIDs): the valid ones of up to
    REMEMBERED_LENGTH characters, up to `limit` of them, then forgotten all at once (a few MB at
    most, whatever the stream holds)."""

    __slots__ = ("pattern", "limit", "valid")

    def __init__(self, pattern, limit):
        self.pattern = pattern
        self.limit = limit
        self.valid = set()

    def __call__(self, text):
        valid = self.valid
        if text in valid:
            return True
        if self.pattern.fullmatch(text) is None:
            return False
        if len(text) <= REMEMBERED_LENGTH:
            if len(valid) >= self.limit:
                valid.clear()
            valid.add(text)
        return True


REMEMBERED_LENGTH = 64  # a did:plc is 32 characters; longer (rare) strings are checked every time


is_did = _Remembered(_DID, 100_000)
is_nsid = _Remembered(_NSID, 10_000)


def _reply_uri(reply, key):
    ref = reply.get(key)
    if ref is None:
        return ""
    if type(ref) is not dict or type(ref.get("uri")) is not str:
        raise Rejected("invalid_record", f"reply.{key} is not a strong ref")
    uri = ref["uri"]
    if record_uri_parts(uri) is None:
        raise Rejected("invalid_at_uri", uri[:200])
    return uri


def has_embedded_media(embed):
    """1 for images or a video, directly or as the media of a quote (external links do not count)."""
    return 1 if has_media(embed) else 0


def post_row(did, rkey, record, event_time, time_us):
    text = record.get("text", "")
    if type(text) is not str:
        raise Rejected("invalid_record", "post text is not a string")
    langs = record.get("langs")
    langs = [lang for lang in langs if type(lang) is str] if type(langs) is list else []
    reply = record.get("reply")
    if type(reply) is dict:
        parent_uri, root_uri = _reply_uri(reply, "parent"), _reply_uri(reply, "root")
    elif reply is None:
        parent_uri = root_uri = ""
    else:
        raise Rejected("invalid_record", "reply is not an object")
    return (did, rkey, f"at://{did}/{POST}/{rkey}", created_at(record.get("createdAt"), event_time), text, langs,
            has_embedded_media(record.get("embed")), parent_uri, root_uri, 0, time_us)


def subject_row(did, rkey, record, event_time, time_us):
    """A like's or a repost's row: the subject at-uri and its parts."""
    return (did, rkey, *_subject_parts(record.get("subject")), created_at(record.get("createdAt"), event_time), 0,
            time_us)


def graph_row(did, rkey, record, event_time, time_us):
    """A follow's or a block's row: the account it points at."""
    target = record.get("subject")
    if type(target) is not str or not is_did(target):
        raise Rejected("invalid_did", f"subject {_shown(target)}")
    return (did, rkey, target, created_at(record.get("createdAt"), event_time), 0, time_us)


def _profile_text(record, key):
    value = record.get(key, "")
    if type(value) is not str:
        raise Rejected("invalid_record", f"profile {key} is not a string")
    return value


def _blob_cid(record, key):
    """The CID of a profile image: a blob's ref.$link, or a legacy blob's cid ('' when there is none)."""
    blob = record.get(key)
    if blob is None:
        return ""
    if type(blob) is dict:
        ref = blob.get("ref")
        link = ref.get("$link") if type(ref) is dict else blob.get("cid")
        if type(link) is str:
            return link
    raise Rejected("invalid_record", f"profile {key} is not a blob")


def profile_row(did, rkey, record, event_time, time_us):
    return (did, rkey, _profile_text(record, "displayName"), _profile_text(record, "description"),
            _blob_cid(record, "avatar"), _blob_cid(record, "banner"), created_at(record.get("createdAt"), event_time),
            0, time_us)


def profile_tombstone(did, rkey, event_time, time_us):
    return (did, rkey, "", "", "", "", event_time, 1, time_us)


def post_tombstone(did, rkey, event_time, time_us):
    return (did, rkey, f"at://{did}/{POST}/{rkey}", event_time, "", [], 0, "", "", 1, time_us)


def subject_tombstone(did, rkey, event_time, time_us):
    return (did, rkey, "", "", "", "", event_time, 1, time_us)


def graph_tombstone(did, rkey, event_time, time_us):
    return (did, rkey, "", event_time, 1, time_us)


# collection -> (table, row of a created or updated record, tombstone of a deleted one)
SPECIALISED = {
    POST: ("posts", post_row, post_tombstone),
    LIKE: ("likes", subject_row, subject_tombstone),
    REPOST: ("reposts", subject_row, subject_tombstone),
    FOLLOW: ("follows", graph_row, graph_tombstone),
    BLOCK: ("blocks", graph_row, graph_tombstone),
    PROFILE: ("profiles", profile_row, profile_tombstone),
}


def _seq_and_time(body, time_us, reason):
    """The relay seq and the time of an identity or account event (the event time when not sane)."""
    seq = body.get("seq", 0)
    if type(seq) is not int or not 0 <= seq < MAX_INT64:
        raise Rejected(reason, "seq is not a sequence number")
    return seq, created_at(body.get("time"), EPOCH + datetime.timedelta(microseconds=time_us))


def collection_matcher(patterns):
    """A predicate for Jetstream's wantedCollections: exact NSIDs or prefixes ending in `.*`."""
    exact = frozenset(pattern for pattern in patterns if not pattern.endswith(".*"))
    prefixes = tuple(pattern[:-1] for pattern in patterns if pattern.endswith(".*"))
    return lambda collection: collection in exact or collection.startswith(prefixes)


def is_collection_pattern(pattern):
    """Whether Jetstream accepts `pattern` in wantedCollections (an NSID, or whole segments then `.*`)."""
    if pattern.endswith(".*"):
        return re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{0,62}(?:\.[a-zA-Z0-9-]{1,63})*", pattern[:-2]) is not None
    return _NSID.fullmatch(pattern) is not None


class EncodedRows:
    """One table's rows as the body of a JSONCompactEachRow insert: the rows' JSON arrays separated
    by commas (what the chDB driver sends), made where the rows were mapped so the writing process
    handles bytes, not rows. `decoded()` gives the rows back (times as ISO 8601 text, which the
    store reads the same) for the writer to bisect a batch the store refused."""

    __slots__ = ("payload", "count")

    def __init__(self, payload, count):
        self.payload = payload
        self.count = count

    @classmethod
    def of(cls, rows):
        return cls(orjson.dumps(rows)[1:-1], len(rows))

    @classmethod
    def joined(cls, parts):
        """The body of one insert of the rows of every EncodedRows in `parts`, in order."""
        parts = [part for part in parts if part.count]
        return cls(b",".join(part.payload for part in parts), sum(part.count for part in parts))

    def __len__(self):
        return self.count

    def decoded(self):
        return [tuple(row) for row in orjson.loads(b"[" + self.payload + b"]")]


class RowBatch:
    """The rows of a run of events, one list per table, plus what the run covered.

    `max_time_us` is the newest event time seen (rejected events included: they are dealt with
    too), `counts` counts indexed events by (kind, collection label), `rejects` by reason, with
    the first `examples` detail of each.
    """

    def __init__(self, max_event_bytes, wanted=None):
        self.max_event_bytes = max_event_bytes
        self.wanted = wanted
        self.rows = {table: [] for table in COLUMNS}
        self.events = 0
        self.max_time_us = None
        self.counts = {}
        self.rejects = {}
        self.examples = {}

    def add(self, raw):
        """Index one raw event (bytes); a bad one is rejected, counted and kept as a dead letter."""
        self.events += 1
        try:
            if len(raw) > self.max_event_bytes:
                raise Rejected("oversized", f"{len(raw)} bytes")
            try:
                event = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                # orjson refuses documents nested deeper than 1024 levels before we can look.
                reason = "too_deep" if "depth limit" in str(exc) else "malformed_json"
                raise Rejected(reason, str(exc)[:200]) from None
            self._add_event(event)
        except Rejected as rejected:
            self.reject(rejected, raw)
        except Exception as exc:
            # The type checks leave no known shape here; should one slip through, it costs that
            # event, not the consumer. One traceback per batch at most.
            if "internal_error" not in self.rejects:
                logger.exception("firehose: mapping an event failed; rejected as internal_error")
            self.reject(Rejected("internal_error", f"{type(exc).__name__}: {exc}"[:200]), raw)

    def add_undecodable(self, raw, detail):
        """Reject a frame that did not even decompress to an event."""
        self.events += 1
        self.reject(Rejected("undecodable_frame", detail), raw)

    def _add_event(self, event):
        if type(event) is not dict:
            raise Rejected("not_an_object", type(event).__name__)
        time_us = event.get("time_us")
        if type(time_us) is not int or not MIN_TIME_US < time_us < MAX_TIME_US:
            raise Rejected("invalid_time_us", _shown(time_us))
        if self.max_time_us is None or time_us > self.max_time_us:
            self.max_time_us = time_us
        did = event.get("did")
        if type(did) is not str or not is_did(did):
            raise Rejected("invalid_did", _shown(did))
        kind = event.get("kind")
        if kind == "commit":
            collection = self._add_commit(did, time_us, event.get("commit"))
            if collection is None:
                return
            key = ("commit", collection if collection in METRIC_COLLECTIONS else "other")
        elif kind == "identity":
            self._add_identity(did, time_us, event.get("identity"))
            key = ("identity", "")
        elif kind == "account":
            self._add_account(did, time_us, event.get("account"))
            key = ("account", "")
        else:
            raise Rejected("unknown_kind", _shown(kind))
        counts = self.counts
        counts[key] = counts.get(key, 0) + 1

    def _add_commit(self, did, time_us, commit):
        """Append a commit's rows; its collection, or None when --collections leaves it out."""
        if type(commit) is not dict:
            raise Rejected("invalid_commit", "commit is not an object")
        collection = commit.get("collection")
        if type(collection) is not str or not is_nsid(collection):
            raise Rejected("invalid_collection", _shown(collection))
        if self.wanted is not None and not self.wanted(collection):
            return None
        rkey = commit.get("rkey")
        if type(rkey) is not str or _RKEY.fullmatch(rkey) is None:
            raise Rejected("invalid_rkey", _shown(rkey))
        operation = commit.get("operation")
        event_time = EPOCH + _timedelta(0, 0, time_us)  # positional: a third of the keyword's cost
        specialised = SPECIALISED.get(collection)
        if operation == "create" or operation == "update":
            record = commit.get("record")
            if type(record) is not dict:
                raise Rejected("invalid_record", "record is not an object")
            if specialised is not None:
                table, make_row, _ = specialised
                row = make_row(did, rkey, record, event_time, time_us)
                text = record_json(record)  # after the row: it strips the record's CIDs
                self.rows[table].append(row)
            else:
                text = record_json(record)
            self.rows["repo_records"].append((did, collection, rkey, operation, text, event_time, 0, time_us))
        elif operation == "delete":
            if specialised is not None:
                table, _, make_tombstone = specialised
                self.rows[table].append(make_tombstone(did, rkey, event_time, time_us))
            self.rows["repo_records"].append((did, collection, rkey, "delete", "", event_time, 1, time_us))
        else:
            raise Rejected("invalid_operation", _shown(operation))
        return collection

    def _add_identity(self, did, time_us, identity):
        if type(identity) is not dict:
            raise Rejected("invalid_identity", "identity is not an object")
        handle = identity.get("handle", "")
        if type(handle) is not str or len(handle) > MAX_HANDLE_LENGTH:
            raise Rejected("invalid_identity", "handle is not a handle")
        seq, changed_at = _seq_and_time(identity, time_us, "invalid_identity")
        self.rows["identities"].append((did, handle.lower(), seq, changed_at, time_us))

    def _add_account(self, did, time_us, account):
        if type(account) is not dict:
            raise Rejected("invalid_account", "account is not an object")
        active = account.get("active")
        if type(active) is not bool:
            raise Rejected("invalid_account", "active is not a boolean")
        status = account.get("status", "")
        if type(status) is not str or len(status) > MAX_STATUS_LENGTH:
            raise Rejected("invalid_account", "status is not a short string")
        seq, changed_at = _seq_and_time(account, time_us, "invalid_account")
        self.rows["account_statuses"].append((did, int(active), status, seq, changed_at, time_us))

    def reject(self, rejected, raw):
        """Count `rejected` (a Rejected) and keep the start of `raw` as a dead letter."""
        reason = rejected.reason
        self.rejects[reason] = self.rejects.get(reason, 0) + 1
        self.examples.setdefault(reason, rejected.detail)
        kept = raw.rstrip(b"\r\n")[:MAX_DEAD_LETTER_BYTES]
        text = kept.decode("utf-8", "replace")
        received_at = datetime.datetime.now(UTC)
        self.rows["firehose_rejects"].append((received_at, reason, rejected.detail, text))
