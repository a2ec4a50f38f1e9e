"""The seed's label API, authenticated by API keys in the X-API-Key header.

Paths, parameters, statuses and response shapes are the seed's where its clients read them
(`/api/admin/feed_members`, `/api/admin/feeds` keyed by label with the seed's `feed_type` names,
`createdAt` in RFC 3339 with `Z`, the legacy root paths with `null` for no members, 401 for a label
the key may not manage or that does not exist); errors are `{"error": "..."}`. What differs, on
purpose (README, "Admin", the label API's differences for client authors):
- a feed name may be a label (`mpls`) or a feed alias (`a-mpls`) on every endpoint (see
  `LabelQuerySet.for_feed_name`); the seed matched exactly on some and after the first '-' on others;
- members may be added by DID as well as by handle;
- a client that keeps sending bad keys is refused with 429 for a while, even with a good key, so
  keys cannot be guessed at speed.
"""

import math

from django.contrib.admin.views.decorators import staff_member_required
from django.core.cache import cache
from django.db.models import Q
from django.http import JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import APIKeyHeader

from apps.accounts.models import APIKey, Label, MembershipError
from apps.indexer.profiles import matching, profiles_of
from apps.feeds.usage import feeds_with_users
from skyline.api_docs import ServedSwagger
from skyline.api_errors import ApiError, api_answer, api_error, validation_message
from skyline.atproto import identity
from skyline.bodies import JsonParser, http_error_message
from skyline.clients import client_address

FAILURE_LIMIT = 10
# Far past any real membership, and within what an SQL OFFSET takes.
MAX_PAGE = 1_000_000
FAILURE_WINDOW = 600
MISSING_KEY = "Missing required API key in X-API-Key header"


class TooManyFailures(Exception):
    """The client sent too many bad keys recently."""


def _failure_key(request):
    return f"apikey:failures:{client_address(request)}"


def _count_failure(request):
    key = _failure_key(request)
    cache.add(key, 0, FAILURE_WINDOW)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, FAILURE_WINDOW)


class APIKeyAuth(APIKeyHeader):
    param_name = "X-API-Key"

    def authenticate(self, request, key):
        if not key:
            raise AuthenticationError(401, MISSING_KEY)
        if (cache.get(_failure_key(request)) or 0) >= FAILURE_LIMIT:
            raise TooManyFailures
        api_key = APIKey.objects.authenticate(key)
        if api_key is None:
            _count_failure(request)
            raise AuthenticationError(401, "Invalid API key")
        return api_key


api = NinjaAPI(
    title="Skyline label API",
    version="1",
    urls_namespace="label_api",
    auth=APIKeyAuth(),
    docs_url="/api/admin/docs",
    docs=ServedSwagger(),
    openapi_url="/api/admin/openapi.json",
    docs_decorator=staff_member_required,
    parser=JsonParser(),
)


api.add_exception_handler(ApiError, api_error)


@api.exception_handler(HttpError)
def _http_error(request, exc):
    # What ninja itself refuses: a missing or wrong key, a body that is not JSON.
    return api_answer(exc.status_code, http_error_message(exc))


@api.exception_handler(ValidationError)
def _invalid_parameters(request, exc):
    return api_answer(400, f"invalid parameters: {validation_message(exc.errors)}")


@api.exception_handler(TooManyFailures)
def _too_many_failures(request, exc):
    response = api_answer(429, "too many invalid API keys from this client; try again later")
    response["Retry-After"] = str(FAILURE_WINDOW)
    return response


def _label(request, feed_name, action):
    """The label `feed_name` names, if the request's key may manage it."""
    if not feed_name:
        raise ApiError(400, "feedName is required")
    label = Label.objects.for_feed_name(feed_name)
    # An unknown label is refused like another's, as the seed refused it (even an admin key).
    if label is None or not request.auth.allows(label):
        raise ApiError(401, f"not authorized: you are not authorized to {action} this feed")
    return label


def _identifier(value, missing):
    value = (value or "").strip().lstrip("@")
    if not value:
        raise ApiError(400, missing)
    if not (identity.is_handle(value) or identity.is_did(value)):
        raise ApiError(400, f"invalid handle: {value!r} is neither a handle nor a DID")
    return value


def _resolving(change):
    """Run `change`; an account that does not resolve (or verify) is a 404 with the seed's message."""
    try:
        change()
    except MembershipError as exc:
        raise ApiError(404, f"failed to resolve handle to did: {exc}") from None
    return {"message": "success"}


def assign(request, feedName: str = "", handle: str = ""):
    label = _label(request, feedName, "assign users to")
    identifier = _identifier(handle, "handle of user to add to feed is required")
    return _resolving(lambda: label.add(identifier, added_by=f"API key {request.auth}"))


def unassign(request, feedName: str = "", handle: str = ""):
    label = _label(request, feedName, "remove users from")
    identifier = _identifier(handle, "handle of user to remove from feed is required")
    return _resolving(lambda: label.remove(identifier))


# Each on its seed path and its legacy one.
api.put("/api/admin/feed_members", summary="Give a label to an account (handle or DID)")(assign)
api.put("/assign_user_to_feed", operation_id="legacy_assign", summary="Legacy path of the above")(assign)
api.delete("/api/admin/feed_members", summary="Take a label from an account (handle or DID)")(unassign)
api.put("/unassign_user_from_feed", operation_id="legacy_unassign", summary="Legacy PUT of the above")(unassign)


def _member(row, handle, display_name):
    """The seed's member object: the handle and name as known (empty ones left out)."""
    member = {"did": row.did}
    if handle or row.handle:
        member["handle"] = handle or row.handle
    if display_name:
        member["displayName"] = display_name
    # RFC 3339 with `Z`, in whole seconds, as the seed wrote it (the store gives UTC times).
    member["createdAt"] = f"{row.created_at:%Y-%m-%dT%H:%M:%SZ}"
    return member


def _searched(members, search):
    """The ids of `members`, in their order, whose DID, handle (as added, indexed or the AppView's) or
    display name (indexed or the AppView's) contains `search`, in any case."""
    rows = list(members.values_list("id", "did", "handle"))
    hits = set(matching(profiles_of([did for _, did, _ in rows], note=False), search))
    needle = search.strip().lstrip("@").casefold()
    return [pk for pk, did, handle in rows if did in hits or needle in handle.casefold()]


@api.get("/api/admin/feed_members", summary="A page of a label's members, newest first")
def members(request, feedName: str = "", limit: int = 25, page: int = 1, search: str = ""):
    label = _label(request, feedName, "list the members of")
    limit = 25 if limit <= 0 else min(limit, 100)
    page = min(max(page, 1), MAX_PAGE)
    found = label.members.order_by("-created_at", "-id")
    if search:
        ids = _searched(found, search)
        total, rows = len(ids), list(found.filter(id__in=ids[(page - 1) * limit:page * limit]))
    else:
        total, rows = found.count(), list(found[(page - 1) * limit:page * limit])
    known = profiles_of([row.did for row in rows])
    return {
        "members": [_member(row, *known[row.did]) for row in rows],
        "page": page,
        "totalPages": math.ceil(total / limit),
        "totalCount": total,
    }


# The seed named each feed by its Go type.
SEED_FEED_TYPES = {"hot": "hot.Feed", "top": "hot.Feed", "label": "authorlabel.Feed", "static": "static.Feed"}


def seed_feed_name(alias):
    """The seed's key for a feed: its alias after the first '-' (`a-mpls` -> `mpls`)."""
    return alias.split("-", 1)[1] if "-" in alias else alias


@api.get("/api/admin/feeds", summary="The feeds by the seed's names, with how many users requested each")
def feeds(request):
    scope = request.auth.label.name if request.auth.label_id else None
    found = {}
    for feed in feeds_with_users():
        name = seed_feed_name(feed["alias"])
        if scope is not None and scope not in (name, feed["label"]):
            continue
        # Two aliases may give one name (`bangers`, `at-bangers`): the feed named so exactly wins,
        # else the first alias (the seed picked at random).
        if name in found and feed["alias"] != name:
            continue
        found[name] = {"feed_type": SEED_FEED_TYPES.get(feed["kind"], feed["kind"]), "user_count": feed["users"]}
    return {"feeds": found}


@api.get("/feed_members", summary="Legacy: every member's DID, in DID order")
def legacy_members(request, feedName: str = ""):
    label = _label(request, feedName, "list the members of")
    # The seed's quirk its clients expect: no members is null, not [].
    return {"authors": list(label.members.order_by("did").values_list("did", flat=True)) or None}
