"""Members' handles and display names: from the index, else from the AppView's getProfiles.

The index (`apps.indexer.profiles`) knows the accounts whose identity or profile changed since
indexing began; most members of an older community are not among them, and the seed asked the
AppView. Here the scheduled task `refresh_member_profiles` asks the AppView (`APPVIEW_URL`,
app.bsky.actor.getProfiles, 25 accounts a call) for the members the index cannot name and keeps
the answers in the cache for PROFILE_CACHE_SECONDS. Pages (the admin, the label API) only read
the cache: a slow or hostile AppView never holds up or breaks a request.

The AppView is an operator-configured URL, trusted as given; its answers are still checked
(types, handle syntax, lengths), and each call has a total deadline and a size cap.
"""

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from apps.indexer.profiles import display_names
from skyline import identity, outbound

from .models import ActorLabel, MembershipError, resolve_actor

logger = logging.getLogger(__name__)

GET_PROFILES = "/xrpc/app.bsky.actor.getProfiles"
BATCH = 25  # the most getProfiles takes
MAX_BYTES = 2_000_000  # 25 profiles are far less; anything bigger is not an answer
# The lexicon's bound on displayName (it also caps graphemes at 64).
DISPLAY_NAME_MAX = 640
# Accounts asked about per run, so one run stays short however large the communities.
PER_RUN = 2500
CACHE_PREFIX = "appview:profile:"


class AppViewError(Exception):
    """The AppView did not answer with profiles; the message says how."""


def _profile(item, asked):
    """(did, handle, display name) of one answered profile, '' for what is missing or malformed."""
    if not isinstance(item, dict) or item.get("did") not in asked:
        return None
    handle = item.get("handle")
    handle = handle.lower() if isinstance(handle, str) and identity.is_handle(handle) else ""
    name = item.get("displayName")
    name = name.strip() if isinstance(name, str) and len(name) <= DISPLAY_NAME_MAX else ""
    return item["did"], handle, name


def fetch_profiles(dids):
    """{did: (handle, display name)} of the `dids` (at most 25) the AppView knows."""
    asked = set(dids)
    try:
        with outbound.Client(settings.APPVIEW_URL, trusted=True) as appview:
            answer = appview.request("GET", GET_PROFILES, params={"actors": list(dids)}, limit=MAX_BYTES,
                                     seconds=settings.APPVIEW_TIMEOUT)
    except outbound.OutboundError as exc:
        raise AppViewError(f"getProfiles failed: {exc}") from None
    if answer.status != 200:
        raise AppViewError(f"getProfiles answered {answer.status}")
    body = answer.json()
    if body is None:
        raise AppViewError("getProfiles answered something that is not JSON")
    items = body.get("profiles") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise AppViewError("getProfiles answered no list of profiles")
    found = (_profile(item, asked) for item in items[: len(asked)])
    return {did: (handle, name) for did, handle, name in filter(None, found)}


def _cached(dids):
    found = cache.get_many([CACHE_PREFIX + did for did in dids])
    return {key[len(CACHE_PREFIX):]: tuple(value) for key, value in found.items()}


def member_profiles(dids):
    """{did: (handle, display name)} for each of `dids`: the index's, else the AppView's as cached."""
    known = display_names(dids)
    missing = [did for did, (handle, name) in known.items() if not (handle and name)]
    cached = _cached(missing) if missing else {}
    for did, (handle, name) in cached.items():
        indexed_handle, indexed_name = known[did]
        known[did] = (indexed_handle or handle, indexed_name or name)
    return known


def refresh_member_profiles():
    """Ask the AppView about the members the index cannot name and the cache holds nothing for.

    Accounts the AppView does not know are cached as unknown too, so they are asked again only
    when that entry expires. Stops at the first failed call (the next run goes on); how many
    accounts were asked about.
    """
    members = list(ActorLabel.objects.values_list("did", flat=True).distinct())
    unnamed = [did for did, (handle, name) in display_names(members).items() if not (handle and name)]
    cached = _cached(unnamed)
    wanted = [did for did in unnamed if did not in cached][:PER_RUN]
    asked = 0
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        try:
            found = fetch_profiles(batch)
        except AppViewError as exc:
            logger.warning("member profiles: %s; %d accounts left for the next run", exc, len(wanted) - start)
            break
        cache.set_many(
            {CACHE_PREFIX + did: list(found.get(did, ("", ""))) for did in batch}, settings.PROFILE_CACHE_SECONDS
        )
        asked += len(batch)
    return asked


# The handle of each account's newest identity event, which the relay verified before relaying it.
_INDEXED_HANDLES = "SELECT did, lowerUTF8(handle) FROM identities FINAL WHERE lowerUTF8(handle) IN %s"


def indexed_dids(handles):
    """{handle (lower-case): did} of the `handles` the index names exactly one account by.

    An account is named by a handle when its newest identity event (relay-verified) gives that
    handle and no later change (identity event or PLC operation, as display_names sees them) gave
    it another. A handle two accounts hold in the index is left out, for the resolver to settle.
    """
    wanted = tuple(sorted({handle.strip().lstrip("@").lower() for handle in handles}))
    if not wanted:
        return {}
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(_INDEXED_HANDLES, [wanted])
        rows = cursor.fetchall()
    newest = display_names([did for did, _ in rows])
    holders = {}
    for did, handle in rows:
        if newest[did][0].lower() == handle:
            holders.setdefault(handle, []).append(did)
    return {handle: dids[0] for handle, dids in holders.items() if len(dids) == 1}


def account_dids(identifiers):
    """({identifier: did}, {identifier: why not}) for DIDs and handles given by a person.

    A DID is taken as given; a handle is looked up in the index first, else resolved and verified
    both ways (`resolve_actor`), with the reason when it cannot be.
    """
    found, failed = {}, {}
    values = {identifier: identifier.strip().lstrip("@") for identifier in identifiers}
    indexed = indexed_dids([value for value in values.values() if identity.is_handle(value)])
    for identifier, value in values.items():
        if identity.is_did(value):
            found[identifier] = value
        elif value.lower() in indexed:
            found[identifier] = indexed[value.lower()]
        else:
            try:
                found[identifier] = resolve_actor(identifier)[0]
            except MembershipError as exc:
                failed[identifier] = str(exc)
    return found, failed


def shown_handles(dids):
    """{did: what to show for it where a person may type a DID or a handle}: the handle when the
    index would name this account by it again, else the DID."""
    handles = {did: handle for did, (handle, _) in display_names(dids).items() if handle}
    indexed = indexed_dids(handles.values())
    return {did: handles[did].lower() if indexed.get(handles.get(did, "").lower()) == did else did for did in dids}
