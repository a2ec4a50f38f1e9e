"""Sort posts and likes by record key first, so a feed's window reads that window and not the history.

A feed asks for the records created in the last hour or day. Sorted by account first, those rows
lie in every granule of the table, and FINAL must read every granule whose key range meets one of
them: the whole history. Record keys are TIDs, base32-sortable microsecond times, so sorted by
(rkey, account) the rows of a window lie together; the `created_at` skip index finds them and FINAL
only widens the read to granules of the same key range. A delete tombstone carries the repo and the
rkey, the whole key, so it still replaces its record (and a record whose key is not a TID only sorts
elsewhere).

ClickHouse cannot change a sorting key in place: each table is copied into a new one sorted the new
way, then the two are exchanged atomically (the materialized views reading the table stay attached
to its name). Stop the consumer first: rows written to the old table during the copy would be lost.
An account's posts, no longer together, are found through a bloom filter index on `did`.
"""

import clickhouse_backend.models
from django.db import migrations

from skyline.db.cluster import LOCAL_SUFFIX

# table -> (sorting key before, sorting key after)
SORTING_KEYS = {
    "posts": (("did", "rkey"), ("rkey", "did")),
    "likes": (("actor_did", "rkey"), ("rkey", "actor_did")),
}


def _sort(schema_editor, table, key):
    """Re-sort `table` by `key` (a no-op when it already is: a rerun after a crash finishes the job).

    Every statement goes through `schema_editor.execute`, so on a cluster (CLICKHOUSE_CLUSTER) they are
    translated like the other migrations' DDL: the copy is a replicated `_local` table behind a
    Distributed one, and the exchange swaps the local tables on every node.
    """
    copy = f"{table}_resorted"
    stored = table + LOCAL_SUFFIX if schema_editor.connection.settings_dict.get("CLUSTER") else table
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT sorting_key FROM system.tables WHERE database = currentDatabase() AND name = %s", [stored]
        )
        if cursor.fetchone()[0] == ", ".join(key):
            return
        cursor.execute(f"SHOW CREATE TABLE {stored}")
        (create,) = cursor.fetchone()
    # The column and index list of the table as it is now, given again to the copy.
    columns = create[create.index("("):create.rindex(")", 0, create.index("\nENGINE")) + 1]
    schema_editor.execute(f"DROP TABLE IF EXISTS {copy}")
    schema_editor.execute(
        f"CREATE TABLE {copy} {columns} ENGINE = ReplacingMergeTree(time_us, deleted) ORDER BY ({', '.join(key)})"
    )
    schema_editor.execute(f"INSERT INTO {copy} SELECT * FROM {table}")
    schema_editor.execute(f"EXCHANGE TABLES {table} AND {copy}")
    schema_editor.execute(f"DROP TABLE {copy}")


def sort_by_record_key(apps, schema_editor):
    for table, (_, after) in SORTING_KEYS.items():
        _sort(schema_editor, table, after)


def sort_by_account(apps, schema_editor):
    for table, (before, _) in SORTING_KEYS.items():
        _sort(schema_editor, table, before)


# Their DDL goes through the schema editor, so cluster mode translates it (tests/test_cluster.py).
sort_by_record_key.cluster_aware = sort_by_account.cluster_aware = True


class Migration(migrations.Migration):
    dependencies = [("indexer", "0006_plc_state_and_known_accounts_views")]

    operations = [
        # Before the copy, so that the copy builds it.
        migrations.AddIndex(
            model_name="post",
            index=clickhouse_backend.models.Index(
                fields=["did"], granularity=1, name="posts_did", type=clickhouse_backend.models.BloomFilter(0.01)
            ),
        ),
        migrations.RunPython(sort_by_record_key, sort_by_account, hints={"database": "clickhouse"}),
    ]
