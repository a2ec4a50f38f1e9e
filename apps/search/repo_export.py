"""An account's repository as JSON (the seed's GET /repo/{did}), read from the account's own PDS.

The repo comes as a CAR file from `com.atproto.sync.getRepo` at the PDS the DID document names,
paced by the same one-checkout-every-2-seconds limiter as /list/members. Posts, likes, reposts,
follows and blocks are listed as {"uri", "content"} with `createdAt` rewritten to RFC 3339 at
whole seconds in its own zone (a record whose createdAt does not parse keeps it as written,
where the seed dropped the record); the profile record is `profile`, or null when there is none
(the seed wrote invalid JSON then).
"""

import datetime
import json

from skyline.atproto import identity, outbound
from skyline.atproto.repos import RepoError, fetch_repo, record_json
from skyline.atproto.syntax import utc_text
from skyline.atproto.xrpc import PdsError
from skyline.errors import Kind, Refused

from . import lists

BUCKETS = {
    "app.bsky.feed.post": "posts",
    "app.bsky.feed.like": "likes",
    "app.bsky.feed.repost": "reposts",
    "app.bsky.graph.follow": "follows",
    "app.bsky.graph.block": "blocks",
}
PROFILE = "app.bsky.actor.profile"
# What a PDS answers for a repo it does not serve (any more).
GONE = ("RepoNotFound", "RepoTakendown", "RepoDeactivated", "RepoSuspended")


class RepoExportError(Refused):
    """An export that cannot be made: `kind` says why (skyline/errors.py)."""


def _whole_seconds(value):
    """An RFC 3339 time cut to whole seconds in its own zone ('Z' for UTC); other values unchanged."""
    if not isinstance(value, str):
        return value
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return value
    offset = parsed.utcoffset()
    if offset is None:
        return value
    whole = parsed.replace(microsecond=0)
    return utc_text(whole) if offset == datetime.timedelta(0) else whole.isoformat()


def _fetch(did):
    try:
        with outbound.calling_out():
            if not lists.REPO_CHECKOUTS.wait(timeout=lists.CHECKOUT_WAIT_SECONDS):
                raise RepoExportError(
                    Kind.TOO_MANY, "too many repositories are being read; try again shortly"
                )
            return fetch_repo(did)
    except outbound.Busy as exc:
        raise RepoExportError(Kind.BUSY, str(exc)) from None
    except identity.IdentityError as exc:
        raise RepoExportError(Kind.NOT_FOUND, f"could not resolve {did}: {exc}") from None
    except PdsError as exc:
        if exc.error in GONE:
            raise RepoExportError(Kind.NOT_FOUND, f"the PDS of {did} does not serve its repo") from None
        raise RepoExportError(Kind.UPSTREAM, f"Error getting repo from its PDS: {exc}") from None
    except RepoError as exc:
        raise RepoExportError(Kind.UPSTREAM, f"Error reading repo CAR: {exc}") from None


def _json_chunks(did, repo):
    """The export as JSON text, record by record, in repo order (so each bucket's records are together)."""
    yield "{"
    profile, bucket, written = None, None, set()
    for collection, rkey, value in repo.records():
        if collection == PROFILE:
            profile = {"$type": PROFILE, **record_json(value)}
            continue
        if collection not in BUCKETS:
            continue
        content = {"$type": collection, **record_json(value)}
        if "createdAt" in content:
            content["createdAt"] = _whole_seconds(content["createdAt"])
        if BUCKETS[collection] != bucket:
            yield "], " if bucket else ""
            bucket = BUCKETS[collection]
            written.add(bucket)
            yield f'"{bucket}": ['
        else:
            yield ", "
        yield json.dumps({"uri": f"at://{did}/{collection}/{rkey}", "content": content})
    yield "], " if bucket else ""
    for empty in BUCKETS.values():
        if empty not in written:
            yield f'"{empty}": [], '
    yield f'"profile": {json.dumps(profile)}}}'


def export_repo(did):
    """JSON text chunks of {"posts", "likes", "reposts", "follows", "blocks": [{"uri", "content"}...],
    "profile": {...} or None}.

    The repo is read through once before the first chunk, so a record that cannot be written out
    is a RepoExportError (UPSTREAM), not an answer cut off half-way; the answer is then written record
    by record, never held whole.
    """
    if not identity.is_did(did):
        raise RepoExportError(Kind.INVALID, f"not a valid DID: {did!r}")
    repo = _fetch(did)
    try:
        for _chunk in _json_chunks(did, repo):
            pass
    except (RepoError, ValueError) as exc:
        raise RepoExportError(Kind.UPSTREAM, f"Error reading repo CAR: {exc}") from None
    return _json_chunks(did, repo)
