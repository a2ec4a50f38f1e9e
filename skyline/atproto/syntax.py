"""ATProto syntax in one place: DIDs, handles, NSIDs, record keys, at-URIs, TIDs, collection names,
what counts as media, and how a UTC time is written.

The rules follow the atproto specs (atproto.com/specs/did, /handle, /nsid, /record-key, /at-uri-scheme,
/tid). Where Skyline is stricter than the spec, the function says so in its name:
`is_resolvable_did` is the DID syntax Skyline can resolve (did:plc and did:web), `parse_record_uri`
the at-URI of one record with a DID authority. Everything here is a type test or a compiled regex:
the firehose mapper (apps/indexer/rows.py) calls the patterns ~30,000 times a second.
"""

import datetime
import re

UTC = datetime.timezone.utc

# The collections Skyline indexes or links to, and the embeds it reads.
POST = "app.bsky.feed.post"
LIKE = "app.bsky.feed.like"
REPOST = "app.bsky.feed.repost"
FOLLOW = "app.bsky.graph.follow"
BLOCK = "app.bsky.graph.block"
PROFILE = "app.bsky.actor.profile"
FEED_GENERATOR = "app.bsky.feed.generator"
LIST = "app.bsky.graph.list"
STARTER_PACK = "app.bsky.graph.starterpack"
EMBED_IMAGES = "app.bsky.embed.images"
EMBED_VIDEO = "app.bsky.embed.video"
EMBED_RECORD_WITH_MEDIA = "app.bsky.embed.recordWithMedia"

# DID: "did:", a lowercase method, ":", then an identifier that does not end in ":" or "%"; 2 KB at most.
_DID_BODY = r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]"
DID = re.compile(r"(?=.{1,2048}\Z)" + _DID_BODY)
# The DIDs Skyline resolves: did:plc (24 base32 characters) and did:web (a host, a port as %3A).
PLC_DID = re.compile(r"did:plc:[a-z2-7]{24}")
_RESOLVABLE_DID = re.compile(r"did:(?:plc:[a-z2-7]{24}|web:[a-zA-Z0-9.%-]+)")
# Handle: a domain name of 2+ labels (1..63 characters, no hyphen at either end), its TLD not
# starting with a digit; 253 characters at most.
_HANDLE = re.compile(
    r"(?=.{1,253}\Z)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
)
# NSID: a reversed domain authority (2+ segments, the first starting with a letter, at most 253
# characters) then a name (a letter, then letters and digits; at most 63). So at most 317 in all.
_NSID_BODY = (
    r"(?=[a-zA-Z0-9.-]{1,253}\.[a-zA-Z][a-zA-Z0-9]{0,62}(?:/|\Z))"
    r"[a-zA-Z][a-zA-Z0-9-]{0,62}(?<!-)(?:\.(?!-)[a-zA-Z0-9-]{1,63}(?<!-))+"
    r"\.[a-zA-Z][a-zA-Z0-9]{0,62}"
)
NSID = re.compile(_NSID_BODY)
# Record key: 1..512 of A-Z a-z 0-9 . - _ : ~, but not "." or "..".
_RKEY_BODY = r"(?!\.{1,2}\Z)[A-Za-z0-9._:~-]{1,512}"
RKEY = re.compile(_RKEY_BODY)
# TID: 13 base32-sortable characters of a 64-bit integer (the spec's pattern: its first character
# carries the integer's top 4 bits; the encoder below keeps the top bit 0, so it writes 2..b there).
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
TID = re.compile(r"[234567a-j][234567a-z]{12}")
# The at-URI of one record: at://<DID>/<NSID>/<rkey>, no query or fragment. Groups: the DID, the
# collection, the rkey. (Its parts' limits keep it under the spec's 8 KB: 5 + 2048 + 1 + 317 + 1 + 512.)
RECORD_URI = re.compile(r"at://((?=[^/]{1,2048}/)" + _DID_BODY + r")/(" + _NSID_BODY + r")/(" + _RKEY_BODY + r")")


def _matcher(pattern, doc):
    """A predicate: whether a value is a string that `pattern` matches whole."""

    def matches(value):
        return type(value) is str and pattern.fullmatch(value) is not None

    matches.__doc__ = doc
    return matches


is_did = _matcher(DID, "Whether a value is a DID of any method (the DID spec's syntax, as atproto restricts it).")
is_resolvable_did = _matcher(
    _RESOLVABLE_DID, "Whether a value is a did:plc or did:web that Skyline could resolve (stricter than is_did).")
is_plc_did = _matcher(PLC_DID, "Whether a value is a did:plc.")
is_handle = _matcher(_HANDLE, "Whether a value is a handle (a domain name; case is not significant).")
is_nsid = _matcher(NSID, "Whether a value is an NSID.")
is_rkey = _matcher(RKEY, "Whether a value is a record key.")
is_tid = _matcher(TID, "Whether a value is a TID.")


def tid(time_us, clock_id=0):
    """The TID of a time (microseconds since the epoch, 53 bits) and a clock id, of which the low
    10 bits count (so a counter may be passed); ValueError for a time outside 53 bits."""
    if not 0 <= time_us < 2**53:
        raise ValueError(f"no TID for time_us={time_us}")
    value = (time_us << 10) | (clock_id & 0x3FF)
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def tid_time_us(value):
    """The time (microseconds since the epoch) a TID names; ValueError if `value` is not a TID."""
    if not is_tid(value):
        raise ValueError(f"not a TID: {value!r}")
    number = 0
    for char in value:
        number = number << 5 | TID_ALPHABET.index(char)
    return number >> 10


def parse_record_uri(value):
    """(did, collection, rkey) of a record's at-URI, or None if `value` is not one."""
    match = RECORD_URI.fullmatch(value) if type(value) is str else None
    return match.groups() if match else None


def parse_at_uri(value):
    """(authority, collection or None, rkey or None) of at://<DID or handle>[/<NSID>[/<rkey>]], else None.

    A query, a fragment or a trailing slash is not accepted.
    """
    if type(value) is not str or not value.startswith("at://") or len(value) > 8192:
        return None
    parts = value[len("at://"):].split("/")
    if not 1 <= len(parts) <= 3 or not (is_did(parts[0]) or is_handle(parts[0])):
        return None
    collection = parts[1] if len(parts) > 1 else None
    rkey = parts[2] if len(parts) > 2 else None
    if (collection is not None and not is_nsid(collection)) or (rkey is not None and not is_rkey(rkey)):
        return None
    return parts[0], collection, rkey


def has_media(embed):
    """Whether a post's embed shows media: images (at least one), a video, or either in a quote.

    Any JSON may arrive here, so every field is type-tested; an images embed with no images (or
    with `images` not a list) shows nothing, so it is not media.
    """
    if type(embed) is not dict:
        return False
    kind = embed.get("$type")
    if kind == EMBED_RECORD_WITH_MEDIA:
        embed = embed.get("media")
        if type(embed) is not dict:
            return False
        kind = embed.get("$type")
    if kind == EMBED_IMAGES:
        images = embed.get("images")
        return type(images) is list and len(images) > 0
    return kind == EMBED_VIDEO


def utc_text(moment, timespec="auto"):
    """`moment` as RFC 3339 in UTC with a "Z" (a naive datetime is taken as UTC, as the store keeps
    times); `timespec` as datetime.isoformat's ("milliseconds" is how atproto records write it)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec=timespec)[: -len("+00:00")] + "Z"
