"""A live connection is read, parsed and mapped by a child process (apps.indexer.mapper, --live):
its death is logged and counted, and a new child resumes with nothing lost; stopping lets it send
what it holds and end by itself; the in-process path stays selectable."""

import logging
import signal

import pytest
from prometheus_client import REGISTRY

from apps.indexer.cursor import cursor_store
from apps.indexer.generator import EventGenerator
from tests.support.consumers import following, wait_until
from tests.support.firehose_events import line, story
from tests.support.firehose_tables import actual_state, expected_state
from tests.support.jetstream import JetstreamServer
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES, transaction=True)

def newest(events):
    return max(event["time_us"] for event in events)


def errors():
    return REGISTRY.get_sample_value("skyline_indexer_reconnects_total", {"cause": "error"}) or 0


def test_a_killed_child_is_logged_and_a_new_one_resumes_with_nothing_lost(caplog):
    events = list(EventGenerator(seed=4, accounts=200).events(300))
    before = errors()
    with JetstreamServer([line(event) for event in events], hold_after=100) as server:
        running = following(url=server.url, rewind_seconds=0.05).start()
        try:
            wait_until(lambda: running.written_through(newest(events[:100])))
            first = running.consumer.live_mapper
            first._process.send_signal(signal.SIGKILL)
            wait_until(lambda: len(server.requests) >= 2)
            server.release()
            wait_until(lambda: running.written_through(newest(events)))
        finally:
            running.stop()
    assert server.requests[1]["cursor"] == newest(events[:100]) - 50_000
    assert errors() - before == 1
    assert ("apps.indexer.consumer", logging.ERROR,
            "firehose: the live mapping process ended early (killed by signal 9 (SIGKILL)); reconnecting"
            ) in caplog.record_tuples
    assert actual_state() == expected_state(events)


def test_stopping_lets_the_child_send_what_it_holds_and_end_by_itself():
    events = story()
    with JetstreamServer([line(event) for event in events]) as server:
        running = following(url=server.url, flush_seconds=3600, batch_size=1_000_000).start()  # it sends only at the end
        # Connected: the child has read the first event (the server sends at once), and holds it.
        wait_until(lambda: running.consumer._connection["state"] == "connected")
        child = running.consumer.live_mapper
        running.stop()
    assert child._process.returncode == 0
    writer = running.consumer.writer
    assert writer.events_written >= 1 and writer.rejects == {}
    assert cursor_store().load() == writer.written_time_us


def test_the_in_process_path_stays_selectable():
    events = story()
    with JetstreamServer([line(event) for event in events]) as server:
        running = following(url=server.url, map_in_child=False).start()
        try:
            wait_until(lambda: running.written_through(newest(events)))
            assert running.consumer.live_mapper is None
        finally:
            running.stop()
    assert actual_state() == expected_state(events)
