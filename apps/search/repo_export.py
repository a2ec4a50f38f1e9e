"""An account's repository as JSON (the seed's GET /repo/{did}), read from the account's own PDS.

The repo comes as a CAR file from `com.atproto.sync.getRepo` at the PDS the DID document names,
paced by the same one-checkout-every-2-seconds limiter as /list/members. Posts, likes, reposts,
follows and blocks are listed as {"uri", "content"} with `createdAt` rewritten to RFC 3339 at
whole seconds in its own zone (a record whose createdAt does not parse keeps it as written,
where the seed dropped the record); the profile record is `profile`, or null when there is none
(the seed wrote invalid JSON then).
"""

import datetime

from skyline import identity

from . import lists
from .repos import Repo, RepoError, record_json
from .xrpc import XrpcClient, XrpcError

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


class RepoExportError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


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
    text = parsed.replace(microsecond=0).isoformat()
    return text[: -len("+00:00")] + "Z" if offset == datetime.timedelta(0) else text


def _fetch(did):
    try:
        pds = identity.pds_endpoint(did)
    except identity.IdentityError as exc:
        raise RepoExportError(404, f"could not resolve {did}: {exc}") from None
    if not lists.REPO_CHECKOUTS.wait(timeout=lists.CHECKOUT_WAIT_SECONDS):
        raise RepoExportError(429, "too many repositories are being read; try again shortly")
    with XrpcClient(pds, timeout=120) as client:
        try:
            repo = Repo(client.get_repo(did))
        except XrpcError as exc:
            if exc.error in GONE:
                raise RepoExportError(404, f"the PDS of {did} does not serve its repo: {exc}") from None
            raise RepoExportError(502, f"Error getting repo from its PDS: {exc}") from None
        except RepoError as exc:
            raise RepoExportError(502, f"Error reading repo CAR: {exc}") from None
    if repo.did != did:
        raise RepoExportError(502, f"the PDS of {did} answered with the repo of {repo.did!r}")
    return repo


def export_repo(did):
    """{"posts", "likes", "reposts", "follows", "blocks": [{"uri", "content"}...], "profile": {...} or None}."""
    if not identity.is_did(did):
        raise RepoExportError(400, f"not a valid DID: {did!r}")
    body = {bucket: [] for bucket in BUCKETS.values()}
    body["profile"] = None
    for collection, rkey, value in _fetch(did).records():
        if collection == PROFILE:
            body["profile"] = {"$type": PROFILE, **record_json(value)}
            continue
        bucket = BUCKETS.get(collection)
        if bucket is None:
            continue
        content = {"$type": collection, **record_json(value)}
        if "createdAt" in content:
            content["createdAt"] = _whole_seconds(content["createdAt"])
        body[bucket].append({"uri": f"at://{did}/{collection}/{rkey}", "content": content})
    return body
