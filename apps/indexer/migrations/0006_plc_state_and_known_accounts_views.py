"""Views that keep plc_did_state and known_accounts up to date as rows are written.

Materialized views run per insert block: plc_did_state gets every operation the directory has not
nullified (the newest per DID wins by time_us, the operation's createdAt), and known_accounts gets
each DID seen in a commit, an identity or account event, or a PLC operation (once per block;
merges keep one row per DID). Existing rows are copied in once.
"""

from django.db import migrations

PLC_STATE_VIEW = """
CREATE MATERIALIZED VIEW IF NOT EXISTS plc_did_state_mv TO plc_did_state AS
SELECT did, operation_type, handle, pds, created_at, time_us
FROM plc_operations
WHERE nullified = 0
"""

# (view name, source table, DID column)
ACCOUNT_SOURCES = [
    ("known_accounts_commits_mv", "repo_records", "repo"),
    ("known_accounts_identities_mv", "identities", "did"),
    ("known_accounts_statuses_mv", "account_statuses", "did"),
    ("known_accounts_plc_mv", "plc_operations", "did"),
]


def _account_view(name, table, column):
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} TO known_accounts AS "
        f"SELECT DISTINCT {column} AS did FROM {table}"
    )


def _account_backfill(table, column):
    return f"INSERT INTO known_accounts (did) SELECT DISTINCT {column} FROM {table}"


class Migration(migrations.Migration):
    dependencies = [("indexer", "0005_plc_profiles_known_accounts")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE plc_operations MODIFY COLUMN operation_json String CODEC(ZSTD(3))",
            "ALTER TABLE plc_operations MODIFY COLUMN operation_json String CODEC(LZ4)",
            hints={"database": "clickhouse"},
        ),
        migrations.RunSQL(PLC_STATE_VIEW, "DROP VIEW IF EXISTS plc_did_state_mv", hints={"database": "clickhouse"}),
        *[
            migrations.RunSQL(
                [_account_view(name, table, column), _account_backfill(table, column)],
                f"DROP VIEW IF EXISTS {name}",
                hints={"database": "clickhouse"},
            )
            for name, table, column in ACCOUNT_SOURCES
        ],
    ]
