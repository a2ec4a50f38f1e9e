"""Accounts' handles and display names: from the index, else from the AppView's getProfiles.

The index (`apps.indexer.profiles`) knows the accounts whose identity or profile changed since
indexing began; most members of an older community are not among them, and the seed asked the
AppView. Here the scheduled task `refresh_member_profiles` asks the AppView (`APPVIEW_URL`,
app.bsky.actor.getProfiles, 25 accounts a call) about the accounts the admin and the label API
show and the index cannot name: label members, clean-up job owners, the owners of API keys named
after a DID, and any other account a page has shown without a name since the last run (account
statuses, say). The answers stay in the cache for PROFILE_CACHE_SECONDS. Pages only read the
cache: a slow or hostile AppView never holds up or breaks a request.

The AppView is an operator-configured URL, trusted as given; its answers are still checked
(types, handle syntax, lengths), and each call has a total deadline and a size cap.
"""

import logging
import re

from django.conf import settings
from django.core.cache import cache
from django.db import connections

from apps.indexer.profiles import CACHE_PREFIX, WANTED_KEY, cached_profiles, display_names
from apps.search.models import CleanupJob
from skyline.atproto import identity, outbound

from .models import ActorLabel, APIKey, MembershipError, resolve_actor

logger = logging.getLogger(__name__)

GET_PROFILES = "/xrpc/app.bsky.actor.getProfiles"
BATCH = 25  # the most getProfiles takes
MAX_BYTES = 2_000_000  # 25 profiles are far less; anything bigger is not an answer
# The lexicon's bound on displayName (it also caps graphemes at 64).
DISPLAY_NAME_MAX = 640
# Accounts asked about per run, so one run stays short however large the communities.
PER_RUN = 2500
_DID_IN_TEXT = re.compile(r"did:(?:plc:[a-z2-7]{24}|web:[a-zA-Z0-9.%-]+)")


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


def owner_did(text):
    """The DID named in `text` (an imported API key is named after its holder), or None."""
    found = _DID_IN_TEXT.search(text or "")
    return found.group(0) if found and identity.is_did(found.group(0)) else None


def _shown_accounts():
    """The accounts the admin and the label API show, noted ones first (someone is looking at them)."""
    noted = cache.get(WANTED_KEY) or []
    members = ActorLabel.objects.values_list("did", flat=True).distinct()
    jobs = CleanupJob.objects.values_list("repo", flat=True).distinct()
    owners = filter(None, map(owner_did, APIKey.objects.values_list("name", flat=True)))
    return list(dict.fromkeys([*reversed(noted), *members, *jobs, *owners])), noted


def refresh_member_profiles():
    """Ask the AppView about the accounts shown that the index cannot name and the cache holds nothing for.

    Accounts the AppView does not know are cached as unknown too, so they are asked again only
    when that entry expires. Stops at the first failed call (the next run goes on); how many
    accounts were asked about.
    """
    accounts, noted = _shown_accounts()
    unnamed = [did for did, (handle, name) in display_names(accounts).items() if not (handle and name)]
    cached = cached_profiles(unnamed)
    wanted = [did for did in unnamed if did not in cached][:PER_RUN]
    asked = 0
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        try:
            found = fetch_profiles(batch)
        except AppViewError as exc:
            logger.warning("account profiles: %s; %d accounts left for the next run", exc,
                           len(wanted) - start)
            break
        cache.set_many(
            {CACHE_PREFIX + did: list(found.get(did, ("", ""))) for did in batch}, settings.PROFILE_CACHE_SECONDS
        )
        asked += len(batch)
    _forget_noted(noted, set(wanted[asked:]))
    return asked


def _forget_noted(noted, left):
    """Drop the noted accounts this run dealt with (those noted meanwhile, or not reached, stay)."""
    if not noted:
        return
    dealt = set(noted) - left
    remaining = [did for did in cache.get(WANTED_KEY) or [] if did not in dealt]
    cache.set(WANTED_KEY, remaining, settings.PROFILE_CACHE_SECONDS)


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
    named = {did: handle.lower() for did, handle in handles.items() if indexed.get(handle.lower()) == did}
    return {did: named.get(did, did) for did in dids}
