"""The XRPC feed generator: the did:web document, describeFeedGenerator, getFeedSkeleton, sendInteractions.

Shapes are the lexicons' exactly; errors are XRPC's `{"error", "message"}` with 400 or 401, never a
500 for bad input. getFeedSkeleton is the hot path: the feed definitions and the skeleton pages
come from caches (`registry.py`, `snapshots.py`), the body is encoded with orjson, and the
analytics row is only buffered.
"""

import re
import time

import orjson
from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from ninja import Field, NinjaAPI, Query, Schema
from ninja.errors import HttpError, ValidationError

from . import analytics, rules, snapshots
from .auth import AuthError, viewer
from .registry import served_feeds

GET_FEED_SKELETON = "app.bsky.feed.getFeedSkeleton"
SEND_INTERACTIONS = "app.bsky.feed.sendInteractions"
_FEED_URI = re.compile(r"^at://([^/?#]+)/([^/?#]+)/([^/?#]+)$")

api = NinjaAPI(
    title="Skyline feed generator",
    version="1",
    urls_namespace="feed_generator",
    docs_url=None,
    openapi_url=None,
)


class XrpcError(Exception):
    def __init__(self, status, error, message):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _json(payload, status=200):
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


@api.exception_handler(XrpcError)
def _xrpc_error(request, exc):
    return _json({"error": exc.error, "message": exc.message}, exc.status)


@api.exception_handler(AuthError)
def _auth_error(request, exc):
    return _json({"error": exc.error, "message": exc.message}, 401)


@api.exception_handler(rules.SignInRequired)
def _sign_in_required(request, exc):
    return _json({"error": "AuthenticationRequired", "message": str(exc)}, 401)


@api.exception_handler(snapshots.BadCursor)
def _bad_cursor(request, exc):
    return _json({"error": "InvalidRequest", "message": str(exc)}, 400)


@api.exception_handler(HttpError)
def _unreadable_request(request, exc):
    # What ninja itself refuses, such as a body that is not JSON.
    return _json({"error": "InvalidRequest", "message": str(exc)}, exc.status_code)


@api.exception_handler(ValidationError)
def _invalid_request(request, exc):
    problems = []
    for error in exc.errors:
        where = ".".join(str(part) for part in error["loc"][1:]) or "body"
        problems.append(f"{where}: {error['msg']}")
    return _json({"error": "InvalidRequest", "message": "; ".join(problems)}, 400)


@api.get("/.well-known/did.json")
def did_document(request):
    return _json({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": settings.SERVICE_DID,
        "service": [{"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": settings.SERVICE_ENDPOINT}],
    })


@api.get("/xrpc/app.bsky.feed.describeFeedGenerator")
def describe_feed_generator(request):
    return _json({"did": settings.SERVICE_DID, "feeds": [{"uri": spec.uri} for spec in served_feeds().values()]})


class SkeletonQuery(Schema):
    feed: str
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = None


def _served_feed(uri):
    match = _FEED_URI.fullmatch(uri)
    if match is None:
        raise XrpcError(400, "InvalidRequest", "feed must be the at-uri of a feed generator record")
    did, collection, alias = match.groups()
    if did not in (settings.FEED_ACTOR_DID, settings.SERVICE_DID) or collection != "app.bsky.feed.generator":
        raise XrpcError(400, "UnknownFeed", f"this feed generator does not serve {uri}")
    spec = served_feeds().get(alias)
    if spec is None:
        raise XrpcError(400, "UnknownFeed", f"unknown feed: {alias}")
    return spec


@api.get("/xrpc/app.bsky.feed.getFeedSkeleton")
def get_feed_skeleton(request, query: Query[SkeletonQuery]):
    started = time.perf_counter()
    viewer_did = viewer(request, GET_FEED_SKELETON)
    spec = _served_feed(query.feed)
    if spec.visible_to(viewer_did):
        items, cursor = snapshots.page(spec.for_viewer(viewer_did), query.cursor or None, query.limit)
    else:
        items, cursor = spec.placeholder[:query.limit], None
    body = {"feed": items, "cursor": cursor} if cursor else {"feed": items}
    response = _json(body)
    now = timezone.now()
    analytics.feed_requests.add((
        spec.alias, viewer_did or "", query.limit, int(bool(query.cursor)),
        int((time.perf_counter() - started) * 1e6), now, int(now.timestamp() * 1e6),
    ))
    return response


class Interaction(Schema):
    item: str = ""
    event: str = ""
    feedContext: str = Field("", max_length=2000)
    reqId: str = Field("", max_length=100)


class Interactions(Schema):
    feed: str = ""
    interactions: list[Interaction] = Field(..., max_length=1000)


@api.post("/xrpc/app.bsky.feed.sendInteractions")
def send_interactions(request, body: Interactions):
    viewer_did = viewer(request, SEND_INTERACTIONS)
    if viewer_did is None:
        raise XrpcError(401, "AuthenticationRequired", "interactions are sent with a service token")
    now = timezone.now()
    for interaction in body.interactions:
        analytics.interactions.add((
            viewer_did, body.feed, interaction.item, interaction.event,
            interaction.feedContext, interaction.reqId, now,
        ))
    return _json({})
