"""Merge the parts `indexer.0007_window_sort_keys` left, so a feed's window lies in one place.

0007 copies each table with INSERT ... SELECT, which reads the old table in account order: each
block it writes holds rows of every day, so every part of the copy spans the whole history. Under
FINAL a feed's window then overlaps in all those parts, and ClickHouse merges them at read time on
every refresh; background merges reduce their number but need not ever end with one. Measured
(`bench/feed_window.py`, 1 M likes a day): after the copy, whats-hot took 5x as long with 30 days of
history as with 1 day; merged, about the same time. Parts written later by the consumer hold the
records of their own minutes (record keys are TIDs), so they overlap the history only at its newest
end, and need no such merge.

`optimize_skip_merged_partitions` leaves a table that is already one merged part alone, so this
costs nothing on a new installation or on a rerun. Tombstones stay (a plain merge keeps the newest
version, the tombstone), so a record that arrives after its delete is still replaced.
"""

from django.db import migrations

TABLES = ("posts", "likes")


def merge(apps, schema_editor):
    for table in TABLES:
        schema_editor.execute(f"OPTIMIZE TABLE {table} FINAL SETTINGS optimize_skip_merged_partitions = 1")


# OPTIMIZE goes through the schema editor, so cluster mode runs it on the local tables ON CLUSTER.
merge.cluster_aware = True


class Migration(migrations.Migration):
    dependencies = [("indexer", "0007_window_sort_keys")]

    operations = [
        migrations.RunPython(merge, migrations.RunPython.noop, hints={"database": "clickhouse"}),
    ]
