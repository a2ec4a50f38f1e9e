"""The accounts feeds must hide, and a retention limit on the dead letters."""

from django.db import migrations

# Jetstream account statuses that take an account's content off the network (lexicon known values;
# `desynchronized` and `throttled` are transient relay states, not the owner's or a moderator's choice).
HIDDEN_ACCOUNTS = """
CREATE VIEW IF NOT EXISTS hidden_accounts AS
SELECT did, status, changed_at
FROM account_statuses FINAL
WHERE active = 0 AND status IN ('deleted', 'takendown', 'deactivated', 'suspended')
"""


class Migration(migrations.Migration):
    dependencies = [("indexer", "0003_firehose_state")]

    operations = [
        migrations.RunSQL(HIDDEN_ACCOUNTS, "DROP VIEW IF EXISTS hidden_accounts", hints={"database": "clickhouse"}),
        migrations.RunSQL(
            "ALTER TABLE firehose_rejects MODIFY TTL toDateTime(received_at) + INTERVAL 30 DAY",
            "ALTER TABLE firehose_rejects REMOVE TTL",
            hints={"database": "clickhouse"},
        ),
    ]
