"""`consume_firehose --replay`: exact table contents after a replay, replays are idempotent, bad input
is counted and skipped."""

import fcntl
import gzip
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import orjson
import pytest
import zstandard
from prometheus_client import REGISTRY
from django.core.management import CommandError, call_command

from apps.indexer import health
from apps.indexer.generator import EventGenerator
from tests.support.firehose_events import ALICE, BOB, CAROL, DAVE, T0, at, like, line, post_uri, story
from tests.support.firehose_tables import VISIBLE, actual_state, expected_state, visible
from tests.support.stores import BOTH_STORES, query

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

ROOT = Path(__file__).resolve().parent.parent
A_POST = post_uri(ALICE, "3lpost000001a")
def replay(path, *options):
    out = io.StringIO()
    call_command("consume_firehose", "--replay", str(path), *options, stdout=out)
    return out.getvalue().strip()


def write_lines(path, events):
    path.write_bytes(b"".join(event.rstrip(b"\n") + b"\n" if isinstance(event, bytes) else line(event)
                              for event in events))
    return path


def events_counted(kind, collection=""):
    return REGISTRY.get_sample_value("skyline_indexer_events_total", {"kind": kind, "collection": collection}) or 0


def test_a_replayed_day_leaves_exactly_the_records_that_still_exist(tmp_path):
    likes_before, accounts_before = events_counted("commit", "app.bsky.feed.like"), events_counted("account")
    output = replay(write_lines(tmp_path / "day.jsonl", story()))
    assert output == "indexed 17 events, rejected 0"
    assert events_counted("commit", "app.bsky.feed.like") - likes_before == 4  # three likes, one unlike
    assert events_counted("account") - accounts_before == 2
    seen = visible()
    assert seen["posts"] == [(ALICE, "3lpost000001a", A_POST, at(T0 + 1_000_000), "hello world, edited", ["en"], 1,
                              "", "", T0 + 11_000_000)]
    assert seen["likes"] == [
        (BOB, "3llike000001b", A_POST, ALICE, "app.bsky.feed.post", "3lpost000001a", at(T0 + 2_000_000), T0 + 2_000_000),
        (CAROL, "3llike000002c", A_POST, ALICE, "app.bsky.feed.post", "3lpost000001a", at(T0 + 4_000_000),
         T0 + 4_000_000),
    ]
    assert seen["reposts"] == [(CAROL, "3lrepost0001c", A_POST, at(T0 + 6_000_000), T0 + 6_000_000)]
    assert seen["follows"] == [(BOB, "3lfollow0001b", ALICE, at(T0 + 7_000_000), T0 + 7_000_000)]
    assert seen["blocks"] == [(CAROL, "3lblock00001c", DAVE, at(T0 + 9_000_000), T0 + 9_000_000)]
    assert [row[:4] for row in seen["repo_records"]] == [
        ("app.bsky.actor.profile", ALICE, "self", "update"),
        ("app.bsky.feed.like", BOB, "3llike000001b", "create"),
        ("app.bsky.feed.like", CAROL, "3llike000002c", "create"),
        ("app.bsky.feed.post", ALICE, "3lpost000001a", "update"),
        ("app.bsky.feed.repost", CAROL, "3lrepost0001c", "create"),
        ("app.bsky.graph.block", CAROL, "3lblock00001c", "create"),
        ("app.bsky.graph.follow", BOB, "3lfollow0001b", "create"),
    ]
    profile = orjson.loads(seen["repo_records"][0][4])
    assert profile["avatar"]["ref"] == {"$link": "bafkreiavatar"}
    assert seen["identities"] == [(CAROL, "carol.example.com", 100, T0 + 15_000_000)]
    assert seen["account_statuses"] == [(BOB, 1, "", T0 + 17_000_000), (DAVE, 0, "takendown", T0 + 16_000_000)]
    # What the feeds read: the unlike and the deleted reply are gone, the taken-down account is hidden.
    assert query("SELECT subject_uri, like_count FROM post_like_counts(hours=24)") == [(A_POST, 2)]
    assert query("SELECT uri, text FROM recent_posts") == [(A_POST, "hello world, edited")]
    assert query("SELECT did, status FROM hidden_accounts") == [(DAVE, "takendown")]


def test_replaying_twice_changes_nothing_visible(tmp_path):
    path = write_lines(tmp_path / "day.jsonl", story())
    replay(path)
    first = visible()
    replay(path)
    assert visible() == first


def test_a_generated_stream_leaves_the_newest_version_of_every_record_in_every_table(tmp_path):
    events = list(EventGenerator(seed=7, accounts=300).events(4000))
    path = write_lines(tmp_path / "stream.jsonl", events)
    assert replay(path) == "indexed 4000 events, rejected 0"
    records, likes, texts, accounts = expected_state(events)
    assert len(likes) > 1000 and len(texts) > 200 and any(op == "update" for *_, op in records)
    assert actual_state() == (records, likes, texts, accounts)
    replay(path)
    assert actual_state() == (records, likes, texts, accounts)


def test_compressed_recordings_and_stdin_replay_the_same(tmp_path):
    data = b"".join(line(event) for event in story())
    (tmp_path / "day.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "day.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(data))
    assert replay(tmp_path / "day.jsonl.gz") == "indexed 17 events, rejected 0"
    first = visible()
    assert replay(tmp_path / "day.jsonl.zst") == "indexed 17 events, rejected 0"
    assert visible() == first
    assert len(first["likes"]) == 2


def test_stdin_replay_runs_as_its_own_process_and_exits_zero(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SKYLINE_DATA_DIR": str(tmp_path)}
    manage = [sys.executable, "manage.py"]
    subprocess.run(manage + ["migrate", "--database", "clickhouse", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    result = subprocess.run(manage + ["consume_firehose", "--replay", "-"], cwd=ROOT, env=env, timeout=120,
                            input=b"".join(line(event) for event in story()) + b"\n\nnot json\n", capture_output=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "indexed 17 events, rejected 1 (malformed_json: 1)"
    assert b"%|" not in result.stderr  # no progress bar off a terminal


def test_a_replay_on_a_terminal_shows_a_progress_bar(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "SKYLINE_DATA_DIR": str(tmp_path / "data")}
    manage = [sys.executable, "manage.py"]
    subprocess.run(manage + ["migrate", "--database", "clickhouse", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    path = write_lines(tmp_path / "day.jsonl", story())
    terminal, attached = pty.openpty()
    fcntl.ioctl(attached, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # rows, columns
    with open(terminal, "rb", buffering=0) as screen:
        process = subprocess.Popen(manage + ["consume_firehose", "--replay", str(path)], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=attached)
        os.close(attached)
        shown = b""
        while chunk := _read(screen):
            shown += chunk
    assert process.wait(timeout=60) == 0
    assert b"100%|" in shown


def _read(screen):
    try:
        return screen.read(4096)
    except OSError:  # the other end closed
        return b""


def test_bad_input_is_counted_logged_and_kept_while_every_good_event_is_indexed(tmp_path, caplog):
    good = story()
    bad = [b"{not json", b'{"did":"alice","time_us":%d,"kind":"commit","commit":{}}' % T0,
           line(like(BOB, "3llike000009b", T0, "https://example.com/post")), b'{"did":"did:plc:x","time_us":1}',
           b'{"did":"did:plc:x","time_us":%d,"kind":"sync"}' % T0, b"[]"]
    mixed = [item for pair in zip(good, bad + [None] * len(good)) for item in pair if item is not None]
    output = replay(write_lines(tmp_path / "mixed.jsonl", mixed))
    assert output == ("indexed 17 events, rejected 6 (invalid_at_uri: 1, invalid_did: 1, invalid_time_us: 1, "
                      "malformed_json: 1, not_an_object: 1, unknown_kind: 1)")
    assert health.snapshot()["rejects"] == {"invalid_at_uri": 1, "invalid_did": 1, "invalid_time_us": 1,
                                            "malformed_json": 1, "not_an_object": 1, "unknown_kind": 1}
    assert health.snapshot()["last_error"].startswith("rejected as ")
    after_mixed = visible()
    for table in VISIBLE:
        query(f"TRUNCATE TABLE {table}")
    replay(write_lines(tmp_path / "good.jsonl", good))  # the same good events alone
    assert visible() == after_mixed
    assert len(after_mixed["likes"]) == 2
    dead = query("SELECT reason, raw FROM firehose_rejects ORDER BY reason")
    assert dead == sorted(zip(["malformed_json", "invalid_did", "invalid_at_uri", "invalid_time_us", "unknown_kind",
                               "not_an_object"], [item.decode().strip() for item in bad]))
    assert sum("rejected 1 event(s) as" in record.message for record in caplog.records) == 6


def test_collections_limit_a_replay_to_the_wanted_commits(tmp_path):
    replay(write_lines(tmp_path / "day.jsonl", story()), "--collections", "app.bsky.graph.*")
    seen = visible()
    assert {row[0] for row in seen["repo_records"]} == {"app.bsky.graph.block", "app.bsky.graph.follow"}
    assert seen["likes"] == [] and len(seen["account_statuses"]) == 2


@pytest.mark.parametrize("options, message", [
    (["--collections", "app.bsky.graph.fo*"], "app.bsky.graph.fo* is not an NSID or a prefix ending in .*"),
    (["--replay", "/nonexistent/events.jsonl"], "no such file: /nonexistent/events.jsonl"),
    (["--cursor", "-5"], "--cursor must be a time_us"),
])
def test_bad_options_stop_with_a_clear_message(options, message):
    with pytest.raises(CommandError, match=message.replace("*", r"\*").replace(".", r"\.")):
        call_command("consume_firehose", *options)
