"""A role started before the stores are migrated says what to run, in one line, and exits 1."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(tmp_path, *args):
    env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("command", [["consume_firehose"], ["export_plc", "--once"], ["serve"]])
def test_roles_refuse_to_start_on_an_unmigrated_store(tmp_path, command):
    result = run(tmp_path, *command)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: the default database is not migrated: run `manage.py migrate` first"
    )


def test_the_clickhouse_store_is_checked_too_and_is_all_a_replay_needs(tmp_path):
    result = run(tmp_path, "consume_firehose", "--replay", "-")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: the clickhouse database is not migrated: run `manage.py migrate --database clickhouse` first"
    )


def test_a_store_missing_only_its_newest_migration_is_refused_too(tmp_path):
    for database in ("default", "clickhouse"):
        assert run(tmp_path, "migrate", "--database", database, "-v0").returncode == 0
    forget = ("from django.db import connections\n"
              "with connections['clickhouse'].cursor() as cursor:\n"
              "    cursor.execute(\"DELETE FROM django_migrations WHERE app = 'indexer' AND name = "
              "(SELECT max(name) FROM django_migrations WHERE app = 'indexer')\")\n")
    assert run(tmp_path, "shell", "--no-imports", "-c", forget).returncode == 0
    result = run(tmp_path, "consume_firehose", "--replay", "-")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: the clickhouse database is not migrated: run `manage.py migrate --database clickhouse` first"
    )
