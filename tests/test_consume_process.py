"""`manage.py consume_firehose` as its own process: SIGTERM writes everything and exits 0; kill -9
and a restart lose nothing."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from apps.indexer.generator import EventGenerator
from tests.support.firehose_events import line
from tests.support.firehose_tables import STATE_QUERIES, expected_state
from tests.support.jetstream import JetstreamServer

ROOT = Path(__file__).resolve().parent.parent

# Run in a process on the data directory (chDB lets one process open it): the state, as JSON.
READ_STATE = f"""
import json, django
django.setup()
from django.db import connections
with connections["clickhouse"].cursor() as cursor:
    state = []
    for sql in {list(STATE_QUERIES)!r}:
        cursor.execute(sql)
        state.append([list(row) for row in cursor.fetchall()])
print(json.dumps(state))
"""


def environment(data_dir, server):
    return {
        "PATH": os.environ["PATH"],
        "SKYLINE_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "skyline.settings",
        "JETSTREAM_URL": server.url,
        "JETSTREAM_FLUSH_SECONDS": "0.1",
        "JETSTREAM_REWIND_SECONDS": "1",
    }


def migrate(env):
    for database in ("default", "clickhouse"):
        subprocess.run([sys.executable, "manage.py", "migrate", "--database", database, "-v0"], cwd=ROOT, env=env,
                       check=True, timeout=600)


@contextmanager
def consumer_process(env):
    process = subprocess.Popen([sys.executable, "manage.py", "consume_firehose"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:  # a failed test leaves no consumer running
            process.kill()
            process.communicate()


def saved_cursor(data_dir):
    with sqlite3.connect(data_dir / "skyline.sqlite3") as db:
        row = db.execute("SELECT time_us FROM indexer_firehose_cursor WHERE name = 'jetstream'").fetchone()
    return row[0] if row else None


# Generous: these only bound a hang, and a busy machine makes starting processes and chDB slow.
def wait_until(predicate, timeout=300.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stored_state(env):
    result = subprocess.run([sys.executable, "-c", READ_STATE], cwd=ROOT, env=env, check=True, timeout=600,
                            capture_output=True, text=True)
    return tuple([tuple(row) for row in rows] for rows in json.loads(result.stdout))


def test_sigterm_stops_the_consumer_with_everything_written_and_exits_zero(tmp_path):
    events = list(EventGenerator(seed=5, accounts=200).events(500))
    newest = max(event["time_us"] for event in events)
    with JetstreamServer([line(event) for event in events]) as server:
        env = environment(tmp_path, server)
        migrate(env)
        with consumer_process(env) as consumer:
            # Sent is not read: the saved cursor is the outside's only sign of what the consumer has.
            wait_until(lambda: saved_cursor(tmp_path) == newest)
            consumer.send_signal(signal.SIGTERM)
            out, err = consumer.communicate(timeout=300)
    assert consumer.returncode == 0, err
    assert out.strip() == f"indexed 500 events, rejected 0; cursor {newest}"
    assert saved_cursor(tmp_path) == newest
    assert stored_state(env) == expected_state(events)


def test_kill_9_during_a_live_run_and_a_restart_lose_nothing(tmp_path):
    events = list(EventGenerator(seed=6, accounts=200).events(1500))
    newest = max(event["time_us"] for event in events)
    # The second half waits until the first consumer is dead, so it dies mid-stream however slow it is.
    with JetstreamServer([line(event) for event in events], pace=1000, hold_after=750) as server:
        env = environment(tmp_path, server)
        migrate(env)
        with consumer_process(env) as first:
            wait_until(lambda: saved_cursor(tmp_path) is not None)
            first.kill()
            first.communicate(timeout=300)
        assert first.returncode == -signal.SIGKILL
        killed_at = saved_cursor(tmp_path)
        assert killed_at < newest
        server.release()
        first_connections = len(server.requests)
        with consumer_process(env) as second:
            wait_until(lambda: saved_cursor(tmp_path) == newest)
            second.send_signal(signal.SIGTERM)
            second.communicate(timeout=300)
    assert second.returncode == 0
    assert server.requests[first_connections]["cursor"] == killed_at - 1_000_000  # the restart's first
    assert stored_state(env) == expected_state(events)


def test_the_consumer_process_loads_only_what_indexing_uses(tmp_path):
    """Its start-up is on every restart's path: no admin, APIs, feeds, Celery, HTTP client, pydantic
    or OpenTelemetry (tracing is off), and for a replay no websockets either (what `python -X importtime`
    lists)."""
    env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "skyline.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--database", "clickhouse", "-v0"], cwd=ROOT, env=env,
                   check=True, timeout=600)
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    finished = subprocess.run([sys.executable, "-X", "importtime", "manage.py", "consume_firehose", "--replay",
                               str(empty)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "indexed 0 events, rejected 0\n"
    loaded = {line.rsplit("|", 1)[1].strip() for line in finished.stderr.splitlines() if line.startswith("import time:")}
    assert "apps.indexer.consumer" in loaded and "chdb" in loaded
    for heavy in ("django.contrib.admin", "apps.feeds", "apps.search", "apps.accounts", "celery", "ninja", "pydantic",
                  "httpx", "websockets", "opentelemetry"):
        assert not [name for name in loaded if name == heavy or name.startswith(heavy + ".")], heavy
