"""Who an account is, from what Skyline has indexed: handles and display names, no API calls.

The handle is the newest one known: from the firehose's identity events (which the relay
verified) or the PLC directory's log (what the account's DID document claims), whichever came
later. The display name is the account's current app.bsky.actor.profile record.

`profiles_of` adds what the AppView said of the accounts the index cannot name, as cached by the
scheduled refresh (apps.accounts.profiles), and notes the accounts neither names for its next run.
"""

from django.conf import settings
from django.core.cache import cache
from django.db import connections

CHUNK = 1000
CACHE_PREFIX = "appview:profile:"
# Accounts pages have shown without a name, for the next run; at most WANTED_MAX of the latest.
WANTED_KEY = "appview:wanted"
WANTED_MAX = 1000

HANDLES = """
SELECT did, argMax(handle, time_us) FROM (
    SELECT did, handle, time_us FROM identities FINAL WHERE did IN %s AND handle != ''
    UNION ALL
    SELECT did, handle, time_us FROM plc_did_state FINAL
    WHERE did IN %s AND handle != '' AND operation_type != 'plc_tombstone'
)
GROUP BY did
"""
NAMES = "SELECT did, display_name FROM profiles FINAL WHERE did IN %s AND rkey = 'self' AND deleted = 0"


def display_names(dids):
    """{did: (handle, display_name)} for each of `dids`; '' for what is not known."""
    wanted = list(dict.fromkeys(dids))
    handles, names = {}, {}
    with connections["clickhouse"].cursor() as cursor:
        for start in range(0, len(wanted), CHUNK):
            chunk = tuple(wanted[start : start + CHUNK])
            cursor.execute(HANDLES, [chunk, chunk])
            handles.update(cursor.fetchall())
            cursor.execute(NAMES, [chunk])
            names.update(cursor.fetchall())
    return {did: (handles.get(did, ""), names.get(did, "")) for did in wanted}


def cached_profiles(dids):
    found = cache.get_many([CACHE_PREFIX + did for did in dids])
    return {key[len(CACHE_PREFIX):]: tuple(value) for key, value in found.items()}


def profiles_of(dids, note=True):
    """{did: (handle, display name)} for each of `dids`: the index's, else the AppView's as cached.

    The accounts neither names are noted (unless `note` is false), so the next refresh asks the
    AppView about them.
    """
    if not dids:
        return {}
    known = display_names(dids)
    missing = [did for did, (handle, name) in known.items() if not (handle and name)]
    cached = cached_profiles(missing) if missing else {}
    for did, (handle, name) in cached.items():
        indexed_handle, indexed_name = known[did]
        known[did] = (indexed_handle or handle, indexed_name or name)
    if note:
        _note([did for did in missing if did not in cached])
    return known


def _note(dids):
    if not dids:
        return
    wanted = cache.get(WANTED_KEY) or []
    new = [did for did in dict.fromkeys(dids) if did not in wanted]
    if new:
        cache.set(WANTED_KEY, (wanted + new)[-WANTED_MAX:], settings.PROFILE_CACHE_SECONDS)


def matching(identities, text):
    """The DIDs of `identities` ({did: (handle, display name)}) whose DID, handle or display name
    contains `text`, in any case."""
    needle = text.strip().lstrip("@").casefold()
    return [did for did, (handle, name) in identities.items()
            if needle in did.casefold() or needle in handle.casefold() or needle in name.casefold()]
