"""`manage.py generate_events`: every output it accepts holds the generator's stream, the stream leads up
to now, and a generated-then-replayed stream fills the trending feeds."""

import io
import time

import orjson
import pytest
from django.core.management import call_command

from apps.feeds.algorithms import compute
from apps.feeds.registry import FeedSpec
from apps.indexer.generator import EventGenerator
from apps.indexer.replay import open_replay
from tests.support.stores import BOTH_STORES

START = 1_783_000_000_000_000
DAY_US = 86_400_000_000
# The magic number each compressed format starts with.
MAGIC = {".jsonl": b"{", ".gz": b"\x1f\x8b", ".zst": b"\x28\xb5\x2f\xfd"}


def generated(count, seed, days=1.0, start=START):
    return b"".join(EventGenerator(seed=seed, rate=count / (days * DAY_US / 1_000_000), start_time_us=start)
                    .lines(count))


def stored(path):
    """What `consume_firehose --replay` reads from the file."""
    with open_replay(str(path)) as replay:
        return b"".join(replay.lines)


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz", "events.jsonl.zst"])
def test_each_file_format_holds_the_whole_stream(tmp_path, name):
    path = tmp_path / name
    call_command("generate_events", "3000", "--seed", "4", "--days", "1", "--start-time-us", str(START),
                 "--output", str(path))
    assert path.read_bytes().startswith(MAGIC[path.suffix])
    assert stored(path) == generated(3000, seed=4)


def test_the_stream_goes_to_stdout(capsysbinary):
    call_command("generate_events", "300", "--seed", "4", "--days", "1", "--start-time-us", str(START))
    assert capsysbinary.readouterr().out == generated(300, seed=4)


def test_by_default_the_events_span_three_days_up_to_now(tmp_path):
    path = tmp_path / "events.jsonl"
    before = time.time_ns() // 1000
    call_command("generate_events", "1000", "--seed", "2", "--output", str(path))
    after = time.time_ns() // 1000
    times = [orjson.loads(line)["time_us"] for line in path.read_bytes().splitlines()]
    span, step, jitter = 3 * DAY_US, 3 * DAY_US // 1000, 1_000_000
    assert len(times) == 1000
    assert before - span - jitter <= min(times) <= after - span + jitter
    assert before - step - jitter <= max(times) <= after - step + jitter


@pytest.mark.django_db(databases=BOTH_STORES)
def test_a_generated_then_replayed_stream_fills_the_trending_feeds(tmp_path, default_feeds):
    path = tmp_path / "events.jsonl.zst"
    call_command("generate_events", "2000", "--seed", "1", "--days", "0.25", "--output", str(path))
    call_command("consume_firehose", "--replay", str(path), stdout=io.StringIO())
    generated_posts = {
        f"at://{event['did']}/app.bsky.feed.post/{event['commit']['rkey']}"
        for event in map(orjson.loads, stored(path).splitlines())
        if event["kind"] == "commit" and event["commit"]["collection"] == "app.bsky.feed.post"
    }
    for alias in ("whats-hot", "top-1h", "top-24h"):
        shown = [item["post"] for item in compute(FeedSpec.of(default_feeds[alias]))]
        assert shown, f"{alias} is empty"
        assert set(shown) <= generated_posts
