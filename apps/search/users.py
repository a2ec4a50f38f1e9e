"""How many accounts there are: every DID Skyline has seen, less those that are gone.

An account is known once it shows up in the firehose (a commit, an identity or an account event)
or in the PLC directory's log (`known_accounts`, kept by materialized views). It is gone when its
latest account event says deleted, taken down, deactivated or suspended (`hidden_accounts`: it
comes back with a later active event), or when its DID is tombstoned in the directory (for good).
"""

from django.db import connections

COUNT_USERS = """
SELECT count() FROM known_accounts FINAL
WHERE did NOT IN (SELECT did FROM hidden_accounts)
  AND did NOT IN (SELECT did FROM plc_did_state FINAL WHERE operation_type = 'plc_tombstone')
"""


def count_users():
    """The number of accounts known to exist now (the seed's `total_users`, without its never-subtracting)."""
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(COUNT_USERS)
        return int(cursor.fetchone()[0])
