"""A replay's parsing and mapping run in a child process (apps.indexer.mapper): its death fails the
replay loudly with what was mapped before it written; stopping ends it; rows it encodes go in, and
a batch of encoded rows the store partly refuses is still split, the good rows written."""

import os
import signal

import pytest
from django.core.management import CommandError, call_command

from apps.indexer.consumer import Consumer, replay_mappers
from apps.indexer.generator import EventGenerator
from apps.indexer.cursor import cursor_store
from apps.indexer.mapper import MapperFailed, MapperProcess
from apps.indexer.rows import EncodedRows, RowBatch
from apps.indexer.writer import Writer
from tests.support.consumers import ConsumerThread, wait_until
from tests.support.stores import BOTH_STORES, query
from tests.support.firehose_events import ALICE, DAVE, T0, at, line, post_uri, story

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

A_POST = post_uri(ALICE, "3lpost000001a")
LATER = T0 + 60_000_000
BAD_LIKE = (DAVE, "3llike000009d", A_POST, ALICE, "app.bsky.feed.post", "3lpost000001a", "yesterday", 0, LATER)


def events_written(replaying):
    writer = replaying.consumer.writer
    return writer.events_written if writer is not None else 0


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "events.fifo"
    os.mkfifo(path)
    return path


def test_a_killed_mapping_process_fails_the_replay_loudly_after_writing_what_it_had_mapped(fifo):
    events = story()[:4]
    replaying = ConsumerThread(Consumer(replay=str(fifo), batch_size=2)).start()
    with open(fifo, "wb") as source:
        source.write(b"".join(line(event) for event in events))
        source.flush()
        wait_until(lambda: events_written(replaying) == 4, timeout=60, what="the first two batches to be written")
        os.kill(replaying.consumer.mapper.pid, signal.SIGKILL)
        replaying.thread.join(60)
    assert not replaying.thread.is_alive()
    assert isinstance(replaying.error, MapperFailed)
    assert str(replaying.error) == "the mapping process ended early (killed by signal 9 (SIGKILL))"
    assert replaying.consumer.writer.events_written == 4
    mapped = RowBatch(1_000_000)
    for event in events:
        mapped.add(line(event))
    for table in ("repo_records", "posts", "likes", "identities", "account_statuses"):
        assert query(f"SELECT count() FROM {table}")[0][0] == len(mapped.rows[table]), table


def test_stopping_a_replay_ends_the_mapping_process_and_returns_cleanly(fifo):
    events = story()[:2]
    replaying = ConsumerThread(Consumer(replay=str(fifo), batch_size=2)).start()
    with open(fifo, "wb") as source:
        source.write(b"".join(line(event) for event in events))
        source.flush()
        wait_until(lambda: events_written(replaying) == 2, timeout=60, what="the first batch to be written")
        replaying.consumer.stop()  # the recording is still open: only stop() can end the replay
        replaying.thread.join(60)
    assert not replaying.thread.is_alive()
    assert replaying.error is None
    assert replaying.consumer.mapper._process.returncode == -signal.SIGTERM
    assert replaying.consumer.writer.events_written == 2


def test_the_command_reports_a_mapping_process_that_died(tmp_path, monkeypatch):
    recording = tmp_path / "day.jsonl"
    recording.write_bytes(b"".join(line(event) for event in story()))
    # The child runs this interpreter: an interpreter that exits at once stands for a crash.
    monkeypatch.setattr("apps.indexer.mapper.sys.executable", "/bin/false")
    with pytest.raises(CommandError, match=r"^the mapping process ended early \(exit status 1\)$"):
        call_command("consume_firehose", "--replay", str(recording))


def test_encoded_rows_the_store_partly_refuses_are_split_and_the_good_ones_written():
    batch = RowBatch(1_000_000)
    for event in story():
        batch.add(line(event))
    likes = batch.rows["likes"]
    good_likes = {(row[0], row[1]) for row in likes}
    likes.insert(len(likes) // 2, BAD_LIKE)
    batch.rows = {table: EncodedRows.of(rows) for table, rows in batch.rows.items() if rows}
    writer = Writer(cursor_store()).start()
    writer.submit(batch)
    writer.close()
    assert writer.rejects == {"store_refused": 1}
    assert set(query("SELECT DISTINCT actor_did, rkey FROM likes")) == good_likes
    (detail,) = query("SELECT detail FROM firehose_rejects")[0]
    assert detail.startswith("likes: ") and "Code: 41." in detail


def test_encoded_rows_decode_to_the_rows_they_encode():
    rows = [(ALICE, "3lpost000001a", A_POST, at(T0), "text \u00e9 \"quoted\"", ["en"], 1, "", "", 0, T0)]
    assert EncodedRows.of(rows).decoded() == [
        (ALICE, "3lpost000001a", A_POST, at(T0).isoformat(), "text \u00e9 \"quoted\"", ["en"], 1, "", "", 0, T0)]
    assert len(EncodedRows.of(rows)) == 1


def _mapped(path, processes, batch_size):
    """What the mapping processes send, the dead letters' arrival times left out."""
    mapper = MapperProcess(str(path), batch_size=batch_size, max_event_bytes=1_000_000, encode=True,
                           processes=processes)
    try:
        return [(batch.events, batch.max_time_us, batch.counts, batch.rejects,
                 {table: [row[1:] if table == "firehose_rejects" else row for row in rows.decoded()]
                  for table, rows in batch.rows.items()}, position)
                for batch, position in mapper.batches()]
    finally:
        mapper.close()


@pytest.mark.parametrize("events", [1000, 1001, 999])
def test_several_mapping_processes_give_the_batches_one_gives_in_the_recordings_order(tmp_path, events):
    recording = tmp_path / "day.jsonl"
    lines = list(EventGenerator(seed=3).lines(events))
    lines[500] = b"{not json\n"  # a reject lands in the second process's batch
    recording.write_bytes(b"".join(lines[:300]) + b"\n  \n" + b"".join(lines[300:]))  # a blank line is skipped
    alone = _mapped(recording, 1, 100)
    assert [batch[0] for batch in alone] == [100] * (events // 100) + ([events % 100] if events % 100 else [])
    assert sum(batch[3].get("malformed_json", 0) for batch in alone) == 1
    assert _mapped(recording, 2, 100) == alone
    assert _mapped(recording, 3, 100) == alone


def test_a_killed_one_of_several_mapping_processes_fails_the_replay_after_the_batches_before_it(tmp_path):
    recording = tmp_path / "day.jsonl"
    recording.write_bytes(b"".join(EventGenerator(seed=3).lines(20_000)))
    mapper = MapperProcess(str(recording), batch_size=10, max_event_bytes=1_000_000, processes=2)
    try:
        batches = mapper.batches()
        next(batches)  # both are running (and soon blocked on their full pipes)
        os.kill(mapper.pids[1], signal.SIGKILL)
        read = 10
        with pytest.raises(MapperFailed, match=r"^the mapping process ended early \(killed by signal 9 \(SIGKILL\)\)$"):
            for batch, _ in batches:
                read += batch.events
        assert read % 10 == 0 and read < 20_000
    finally:
        mapper.close()


def test_a_replay_from_a_file_is_mapped_by_a_process_per_core_up_to_two(tmp_path, fifo, monkeypatch):
    recording = tmp_path / "day.jsonl"
    recording.write_bytes(b"".join(line(event) for event in story()))
    monkeypatch.setattr("apps.indexer.consumer.os.cpu_count", lambda: 8)
    assert replay_mappers(str(recording)) == 2
    assert replay_mappers(str(fifo)) == 1  # a pipe is read once: by one process
    assert replay_mappers("-") == 1
    monkeypatch.setattr("apps.indexer.consumer.os.cpu_count", lambda: 1)
    assert replay_mappers(str(recording)) == 1
