"""The consumer following Jetstream (a real websocket server on loopback): everything indexed, the
cursor saved after the data and resumed from, dropped and silent connections resumed, both
compression modes, Redis or the relational store for the cursor."""

import threading
import time

import pytest
import redis
import zstandard
from prometheus_client import REGISTRY

from apps.indexer import health
from apps.indexer.cursor import RedisCursor, cursor_store
from apps.indexer.generator import EventGenerator
from apps.indexer.rows import RowBatch
from apps.indexer.writer import Writer, WriteFailed
from tests.support.consumers import following, wait_until
from tests.support.firehose_events import ALICE, BOB, CAROL, T0, like, line, post_uri, story
from tests.support.firehose_tables import actual_state, expected_state, visible
from tests.support.jetstream import JetstreamServer
from tests.support.stores import BOTH_STORES, query
from tests.support.servers import redis_server

# The writer thread saves the cursor through its own connection: no test transaction around it.
pytestmark = pytest.mark.django_db(databases=BOTH_STORES, transaction=True)

def reconnects(cause):
    return REGISTRY.get_sample_value("skyline_indexer_reconnects_total", {"cause": cause}) or 0


def newest(events):
    return max(event["time_us"] for event in events)


def generated(count, seed=3):
    return list(EventGenerator(seed=seed, accounts=200).events(count))


def test_following_jetstream_indexes_every_event_then_saves_the_cursor():
    events = story()
    started = time.time()
    with JetstreamServer([line(event) for event in events]) as server:
        with following(url=server.url) as running:
            wait_until(lambda: running.written_through(newest(events)))
    request = server.requests[0]
    assert request["cursor"] is None  # nothing saved yet: the live tip
    assert "permessage-deflate" in request["extensions"] and not request["compress"]
    assert cursor_store().load() == newest(events)
    assert query("SELECT subject_uri, like_count FROM post_like_counts(hours=24)") == [
        (post_uri(ALICE, "3lpost000001a"), 2)]
    snapshot = health.snapshot()
    assert snapshot["cursor_time_us"] == newest(events)
    assert snapshot["rejects"] == {} and snapshot["updated_at"] is not None
    # The lag is the age of the newest event, measured now (the events were made before the test ran).
    newest_seconds = newest(events) / 1_000_000
    assert started - newest_seconds <= snapshot["lag_seconds"] <= time.time() - newest_seconds


def test_a_restart_resumes_from_the_saved_cursor_rewound_by_the_margin():
    events = story()
    cursor_store().save(T0 + 10_000_000)
    with JetstreamServer([line(event) for event in events]) as server:
        with following(url=server.url, rewind_seconds=2) as running:
            wait_until(lambda: running.written_through(newest(events)))
    assert server.requests[0]["cursor"] == T0 + 8_000_000
    # Only what the server sent from there on: no likes or follows (all older), the later records.
    seen = visible()
    assert seen["likes"] == [] and seen["follows"] == []
    assert [row[:3] for row in seen["repo_records"]] == [
        ("app.bsky.actor.profile", ALICE, "self"), ("app.bsky.feed.post", ALICE, "3lpost000001a"),
        ("app.bsky.graph.block", CAROL, "3lblock00001c")]


def test_a_given_cursor_and_collections_are_what_jetstream_is_asked_for():
    events = story()
    cursor_store().save(T0 + 10_000_000)
    with JetstreamServer([line(event) for event in events]) as server:
        with following(url=server.url, cursor=T0, collections=["app.bsky.feed.post", "app.bsky.graph.*"]) as running:
            wait_until(lambda: running.written_through(newest(events)))
    assert server.requests[0]["cursor"] == T0
    assert server.requests[0]["wantedCollections"] == ["app.bsky.feed.post", "app.bsky.graph.*"]
    seen = visible()
    assert {row[0] for row in seen["repo_records"]} == {"app.bsky.feed.post", "app.bsky.graph.block",
                                                         "app.bsky.graph.follow"}
    assert seen["likes"] == [] and len(seen["account_statuses"]) == 2


def test_consumers_split_by_collection_each_keep_their_own_cursor():
    events = story()
    cursor_store().save(T0 + 10_000_000)  # where an unsplit consumer stands
    with JetstreamServer([line(event) for event in events]) as server:
        with following(url=server.url, rewind_seconds=0, collections=["app.bsky.graph.*"]) as running:
            wait_until(lambda: running.written_through(newest(events)))
    assert server.requests[0]["cursor"] is None  # its own stream has no cursor yet: from the live tip
    assert cursor_store().load() == T0 + 10_000_000
    assert cursor_store("jetstream:app.bsky.graph.*").load() == newest(events)


def test_dropped_connections_are_resumed_from_just_before_the_newest_event_and_lose_nothing():
    events = generated(600)
    before = reconnects("error")
    with JetstreamServer([line(event) for event in events], drop_every=50) as server:
        with following(url=server.url, rewind_seconds=0.05) as running:
            wait_until(lambda: running.written_through(newest(events)))
    assert actual_state() == expected_state(events)
    assert len(server.requests) >= 12 and reconnects("error") - before >= 11
    assert server.requests[1]["cursor"] == newest(events[:50]) - 50_000


def test_a_silent_stream_is_noticed_and_reconnected():
    events = generated(200)
    before = reconnects("silent")
    with JetstreamServer([line(event) for event in events], silent_after=80) as server:
        with following(url=server.url, receive_timeout=0.5, rewind_seconds=0.05) as running:
            wait_until(lambda: running.written_through(newest(events)))
    assert actual_state() == expected_state(events)
    # Resumed from just before the newest event it had. How many reconnections follow depends on how long
    # the writes take (the stream idles after its last event; a stalled reader fails its keepalive).
    silent = [request["went_silent"] for request in server.requests].index(True)
    assert server.requests[silent + 1]["cursor"] == server.newest_before_silence - 50_000
    assert reconnects("silent") - before >= 1


def test_zstd_frames_with_a_dictionary_and_no_permessage_deflate():
    events = generated(400)
    samples = [line(event) for event in generated(2000, seed=9)]
    dictionary = zstandard.train_dictionary(16_384, samples).as_bytes()
    with JetstreamServer([line(event) for event in events], zstd_dictionary=dictionary) as server:
        with following(url=server.url, zstd_dictionary=dictionary) as running:
            wait_until(lambda: running.written_through(newest(events)))
    assert server.requests[0]["compress"] and server.requests[0]["extensions"] == ""
    assert actual_state() == expected_state(events)


def test_a_frame_that_does_not_decompress_is_rejected_and_the_stream_goes_on():
    events = generated(50)
    dictionary = zstandard.train_dictionary(4096, [line(event) for event in generated(1000, seed=9)]).as_bytes()
    other = zstandard.train_dictionary(4096, [line(event) for event in generated(1000, seed=11)]).as_bytes()
    with JetstreamServer([line(event) for event in events], zstd_dictionary=other) as server:
        with following(url=server.url, zstd_dictionary=dictionary) as running:
            wait_until(lambda: running.consumer.writer is not None and running.consumer.writer.events_written == 50)
    assert running.consumer.writer.rejects == {"undecodable_frame": 50}
    assert query("SELECT count() FROM firehose_rejects WHERE reason = 'undecodable_frame'") == [(50,)]


def test_with_redis_the_cursor_lives_in_redis(redis_url):
    events = story()
    assert isinstance(cursor_store(), RedisCursor)
    with JetstreamServer([line(event) for event in events]) as server:
        with following(url=server.url) as running:
            wait_until(lambda: running.written_through(newest(events)))
    assert int(redis.Redis.from_url(redis_url).get("skyline:indexer:cursor:jetstream")) == newest(events)
    assert cursor_store().load() == newest(events)


def test_the_cursor_waits_for_the_store_and_never_runs_ahead_of_the_data():
    batch = RowBatch(1_000_000)
    batch.add(line(like(BOB, "3llike000001b", T0, post_uri(ALICE, "3lpost000001a"))))
    errors = REGISTRY.get_sample_value("skyline_indexer_write_errors_total") or 0
    query("RENAME TABLE likes TO likes_away")
    try:
        writer = Writer(cursor_store(), retry_seconds=(0.01, 0.05)).start()
        writer.submit(batch)
        wait_until(lambda: (REGISTRY.get_sample_value("skyline_indexer_write_errors_total") or 0) > errors)
        assert cursor_store().load() is None
    finally:
        query("RENAME TABLE likes_away TO likes")
    writer.close()  # the store is back: the batch is written, then the cursor moves
    assert cursor_store().load() == T0
    assert query("SELECT actor_did FROM likes FINAL") == [(BOB,)]


def test_a_store_that_stays_down_fails_the_stop_and_keeps_the_cursor():
    batch = RowBatch(1_000_000)
    batch.add(line(like(BOB, "3llike000001b", T0, post_uri(ALICE, "3lpost000001a"))))
    query("RENAME TABLE likes TO likes_away")
    try:
        writer = Writer(cursor_store(), retry_seconds=(0.01, 0.01), attempts_after_stop=2).start()
        writer.submit(batch)
        with pytest.raises(WriteFailed, match="rows to likes"):
            writer.close()
    finally:
        query("RENAME TABLE likes_away TO likes")
    assert cursor_store().load() is None


def test_a_write_failing_long_before_the_stop_still_gets_its_attempts_after_it():
    batch = RowBatch(1_000_000)
    batch.add(line(like(BOB, "3llike000001b", T0, post_uri(ALICE, "3lpost000001a"))))
    errors = lambda: REGISTRY.get_sample_value("skyline_indexer_write_errors_total") or 0  # noqa: E731
    query("RENAME TABLE likes TO likes_away")
    try:
        writer = Writer(cursor_store(), retry_seconds=(0.01, 0.01), attempts_after_stop=3).start()
        writer.submit(batch)
        before = errors()
        wait_until(lambda: errors() >= before + 5, what="five failed attempts")
        at_stop = errors()
        with pytest.raises(WriteFailed, match="rows to likes"):
            writer.close()
        # Three attempts end after the stop (one of them may have been under way when it came, and
        # one more may have failed just before it): not the one that a count of all attempts allowed.
        assert 3 <= errors() - at_stop <= 4
    finally:
        query("RENAME TABLE likes_away TO likes")
    assert cursor_store().load() is None


def test_stopping_while_the_store_is_down_ends_promptly_and_keeps_the_cursor():
    # A like first, so every batch fails however the stream is cut into batches.
    events = [like(BOB, "3llike000000b", T0, post_uri(ALICE, "3lpost000001a"))] + story()
    errors = REGISTRY.get_sample_value("skyline_indexer_write_errors_total") or 0
    query("RENAME TABLE likes TO likes_away")
    try:
        with JetstreamServer([line(event) for event in events]) as server:
            running = following(url=server.url)
            running.start()
            wait_until(lambda: (REGISTRY.get_sample_value("skyline_indexer_write_errors_total") or 0) > errors
                       and server.sent == len(events))
            with pytest.raises(WriteFailed, match="rows to likes"):
                running.stop()  # which fails if the consumer has not ended
    finally:
        query("RENAME TABLE likes_away TO likes")
    assert cursor_store().load() is None


def test_a_slow_store_holds_the_reader_back_instead_of_queueing_without_bound():
    def one_like(rkey, time_us):
        batch = RowBatch(1_000_000)
        batch.add(line(like(BOB, rkey, time_us, post_uri(ALICE, "3lpost000001a"))))
        return batch

    errors = REGISTRY.get_sample_value("skyline_indexer_write_errors_total") or 0
    query("RENAME TABLE likes TO likes_away")
    try:
        writer = Writer(cursor_store(), max_pending=1, retry_seconds=(0.01, 0.05)).start()
        writer.submit(one_like("3llike000001b", T0))  # taken by the writer, which keeps retrying
        wait_until(lambda: (REGISTRY.get_sample_value("skyline_indexer_write_errors_total") or 0) > errors)
        writer.submit(one_like("3llike000002b", T0 + 1))  # waits in the queue
        third = threading.Thread(target=writer.submit, args=(one_like("3llike000003b", T0 + 2),))
        third.start()
        third.join(timeout=0.3)
        assert third.is_alive()  # the reader is held back
    finally:
        query("RENAME TABLE likes_away TO likes")
    third.join(timeout=10)
    writer.close()
    assert query("SELECT count() FROM likes FINAL") == [(3,)] and cursor_store().load() == T0 + 2
