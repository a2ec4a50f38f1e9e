"""The XRPC feed generator: the did:web document, describeFeedGenerator, getFeedSkeleton, sendInteractions.

Shapes are the lexicons' exactly; errors are XRPC's `{"error", "message"}` with 400, 401 or 413,
never a 500 for bad input. getFeedSkeleton is the hot path: the feed definitions and the skeleton pages
come from caches (`registry.py`, `snapshots.py`), the body is encoded with orjson, and the
analytics row is only buffered.
"""

import datetime
import re
import time

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from ninja import Field, NinjaAPI, Schema
from ninja.errors import HttpError, ValidationError
from pydantic import BaseModel

from skyline.api_errors import XrpcError, validation_message, xrpc_answer
from skyline.api_errors import xrpc_error as _xrpc_error
from skyline.bodies import JsonParser, http_error_message

from . import analytics, metrics, rules, snapshots
from .auth import AuthError, viewer
from .registry import served_feeds

GET_FEED_SKELETON = "app.bsky.feed.getFeedSkeleton"
SEND_INTERACTIONS = "app.bsky.feed.sendInteractions"
_FEED_URI = re.compile(r"^at://([^/?#]+)/([^/?#]+)/([^/?#]+)$")
# Lengths of the free text in sendInteractions. The lexicon bounds feedContext (2000) and reqId
# (100); an at-uri is at most 8 KB (the AT URI spec); an event is a token, an NSID (at most 317
# characters) + "#" + a name (at most 63).
AT_URI_MAX = 8192
TOKEN_MAX = 381

api = NinjaAPI(
    title="Skyline feed generator",
    version="1",
    urls_namespace="feed_generator",
    docs_url=None,
    openapi_url=None,
    parser=JsonParser(),
)


def _json(payload, status=200):
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


api.add_exception_handler(XrpcError, _xrpc_error)


@api.exception_handler(AuthError)
def _auth_error(request, exc):
    return xrpc_answer(401, exc.error, exc.message)


@api.exception_handler(HttpError)
def _unreadable_request(request, exc):
    # What ninja itself refuses, such as a body that is not JSON.
    return xrpc_answer(exc.status_code, "InvalidRequest", http_error_message(exc))


@api.exception_handler(RequestDataTooBig)
def _body_too_large(request, exc):
    message = f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
    return xrpc_answer(413, "PayloadTooLarge", message)


@api.exception_handler(ValidationError)
def _invalid_request(request, exc):
    return xrpc_answer(400, "InvalidRequest", validation_message(exc.errors))


@api.get("/.well-known/did.json")
def did_document(request):
    return _json({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": settings.SERVICE_DID,
        "service": [{"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": settings.SERVICE_ENDPOINT}],
    })


@api.get("/xrpc/app.bsky.feed.describeFeedGenerator")
def describe_feed_generator(request):
    feeds = [{"uri": spec.uri} for spec in served_feeds().values() if spec.listed]
    return _json({"did": settings.SERVICE_DID, "feeds": feeds})


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


def _skeleton_query(parameters):
    """(feed, limit, cursor) of a getFeedSkeleton query string, as the lexicon bounds them."""
    feed = parameters.get("feed")
    if not feed:
        raise XrpcError(400, "InvalidRequest", "feed: Field required")
    limit = parameters.get("limit", "50")
    if not (len(limit) <= 3 and limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 100):
        raise XrpcError(400, "InvalidRequest", "limit: must be an integer from 1 to 100")
    return feed, int(limit), parameters.get("cursor") or None


@require_GET
def get_feed_skeleton(request):
    """A plain view rather than a ninja operation: this is the hot path, and ninja's parameter
    validation cost more than the view's own work (see also skyline/hot_paths.py)."""
    status, body = skeleton(request.GET, request.META.get("HTTP_AUTHORIZATION"))
    return HttpResponse(body, status=status, content_type="application/json")


def skeleton(parameters, authorization):
    """(status, JSON body bytes) of getFeedSkeleton for the query's `parameters` (a mapping of each
    name to its last value) and the Authorization header (None when absent).

    The view above and skyline/hot_paths.py, which answers without building a Django request, both
    answer with this.
    """
    started = time.perf_counter()
    try:
        feed, limit, cursor = _skeleton_query(parameters)
        viewer_did = None if authorization is None else viewer(_Headers(authorization), GET_FEED_SKELETON)
        spec = _served_feed(feed)
        if spec.visible_to(viewer_did):
            items, next_cursor = snapshots.page(spec.for_viewer(viewer_did), cursor, limit)
        else:
            items, next_cursor = spec.placeholder[:limit], None
    except XrpcError as exc:
        return _status_and_body(_xrpc_error(None, exc))
    except AuthError as exc:
        return _status_and_body(_auth_error(None, exc))
    except snapshots.BadCursor as exc:
        return 400, orjson.dumps({"error": "InvalidRequest", "message": str(exc)})
    except rules.SignInRequired as exc:
        return 401, orjson.dumps({"error": "AuthenticationRequired", "message": str(exc)})
    body = orjson.dumps({"feed": items, "cursor": next_cursor} if next_cursor else {"feed": items})
    now = time.time()
    analytics.feed_requests.add(analytics.FeedRequestRow(
        feed_name=spec.alias, user_did=viewer_did or "", limit_requested=limit,
        has_cursor=int(cursor is not None), latency_us=int((time.perf_counter() - started) * 1e6),
        requested_at=datetime.datetime.fromtimestamp(now, datetime.UTC), time_us=int(now * 1e6),
    ))
    metrics.observe(spec.alias, viewer_did, time.perf_counter() - started)
    return 200, body


get_feed_skeleton.answer = skeleton  # what skyline/hot_paths.py answers with


class _Headers:
    """What auth.viewer reads of a request: its Authorization header."""

    def __init__(self, authorization):
        self.META = {"HTTP_AUTHORIZATION": authorization}


def _status_and_body(response):
    return response.status_code, response.content


# Plain pydantic models: ninja's Schema reads attributes of any object, so an interaction that is
# a number or a list would pass as an empty one.
class Interaction(BaseModel):
    item: str = Field("", max_length=AT_URI_MAX)
    event: str = Field("", max_length=TOKEN_MAX)
    feedContext: str = Field("", max_length=2000)
    reqId: str = Field("", max_length=100)


class Interactions(BaseModel):
    feed: str = Field("", max_length=AT_URI_MAX)
    interactions: list[Interaction] = Field(..., max_length=1000)


@api.post("/xrpc/app.bsky.feed.sendInteractions")
def send_interactions(request, body: Interactions):
    viewer_did = viewer(request, SEND_INTERACTIONS)
    if viewer_did is None:
        raise XrpcError(401, "AuthenticationRequired", "interactions are sent with a service token")
    now = timezone.now()
    for interaction in body.interactions:
        analytics.interactions.add(analytics.InteractionRow(
            user_did=viewer_did, feed_uri=body.feed, item_uri=interaction.item, event=interaction.event,
            feed_context=interaction.feedContext, req_id=interaction.reqId, received_at=now,
        ))
    return _json({})
