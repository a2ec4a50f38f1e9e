"""The firehose schema: seed table names, ReplacingMergeTree versioned by time_us, tombstone-friendly keys."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stores import BOTH_STORES, query

ROOT = Path(__file__).resolve().parent.parent

EXPECTED = {
    "repo_records": "collection, repo, rkey",
    "posts": "rkey, did",  # record key (a TID: time) first, so a window reads together
    "likes": "rkey, actor_did",
    "reposts": "actor_did, rkey",
    "follows": "actor_did, rkey",
    "blocks": "actor_did, rkey",
}


@pytest.mark.django_db(databases=BOTH_STORES)
def test_every_firehose_table_has_the_engine_version_and_key_that_let_tombstones_collapse():
    rows = query(
        "SELECT name, engine, sorting_key, partition_key, engine_full FROM system.tables "
        "WHERE database = currentDatabase() AND name IN %s",
        [tuple(EXPECTED)],
    )
    found = {name: (engine, key, partition, full) for name, engine, key, partition, full in rows}
    assert set(found) == set(EXPECTED)
    for name, key in EXPECTED.items():
        engine, sorting_key, partition_key, engine_full = found[name]
        assert engine == "ReplacingMergeTree"
        assert engine_full.startswith("ReplacingMergeTree(time_us, deleted)")
        assert sorting_key == key
        assert partition_key == ""  # a tombstone must land where the row it deletes is


@pytest.mark.django_db(databases=BOTH_STORES)
def test_seed_columns_are_all_there():
    columns = dict(
        query("SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'posts'")
    )
    assert columns == {
        "did": "String", "rkey": "String", "uri": "String", "created_at": "DateTime64(6, 'UTC')",
        "indexed_at": "DateTime64(6, 'UTC')", "text": "String", "langs": "Array(LowCardinality(String))",
        "has_embedded_media": "UInt8", "parent_uri": "String", "root_uri": "String", "deleted": "UInt8",
        "time_us": "Int64",
    }
    like_columns = [
        name for (name,) in
        query("SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'likes' ORDER BY position")
    ]
    assert set(like_columns) == {
        "actor_did", "subject_uri", "subject_did", "subject_collection", "subject_rkey", "rkey",
        "created_at", "indexed_at", "deleted", "time_us",
    }


@pytest.mark.django_db(databases=BOTH_STORES)
def test_read_views_exist():
    views = {name for (name,) in query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'View'"
    )}
    assert views == {"recent_posts", "post_like_counts", "hidden_accounts"}


def test_migrate_on_an_empty_data_directory_creates_the_six_tables(tmp_path):
    env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path)}
    manage = [sys.executable, "manage.py"]
    for database in ("default", "clickhouse"):
        subprocess.run(manage + ["migrate", "--database", database, "--noinput"], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=180)
    listing = subprocess.run(
        manage + ["shell", "--no-imports", "-c",
                  "import json; from django.db import connections\n"
                  "print(json.dumps(connections['clickhouse'].introspection.table_names()))"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=180,
    )
    tables = set(json.loads(listing.stdout))
    assert set(EXPECTED) <= tables
    assert (tmp_path / "clickhouse").is_dir()
    assert (tmp_path / "skyline.sqlite3").is_file()
