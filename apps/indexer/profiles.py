"""Who an account is, from what Skyline has indexed: handles and display names, no API calls.

The handle is the newest one known: from the firehose's identity events (which the relay
verified) or the PLC directory's log (what the account's DID document claims), whichever came
later. The display name is the account's current app.bsky.actor.profile record.
"""

from django.db import connections

CHUNK = 1000

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
