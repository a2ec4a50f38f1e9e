"""The dashboard and /metrics tell the truth about the consumer and the PLC exporter: a connection
that fails shows its error and state, a replay shows its progress, the PLC copy its progress and disk."""

import re
import threading
import time

import pytest
from django.db import connections
from prometheus_client import REGISTRY

from apps.indexer import health
from apps.indexer.consumer import Consumer
from apps.indexer.plc import PlcExporter
from tests.support.firehose_events import line, story
from tests.support.identities import did_plc
from tests.support.plc_export import PlcExport, plc_operation
from tests.support.stores import BOTH_STORES, closed_port, query
from skyline.backoff import Backoff

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES, transaction=True), pytest.mark.usefixtures("fresh_cache")]


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def module_text(page, module_id):
    """The visible text of one dashboard module, whitespace collapsed."""
    html = re.search(rf'<div class="module" id="{module_id}">(.*?)</table>', page, re.S).group(1)
    html = re.sub(r"</?(code|span)[^>]*>", "", html)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'").strip()


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels)


def test_a_consumer_that_cannot_connect_shows_the_error_and_its_state(admin_client):
    port = closed_port()
    consumer = Consumer(url=f"ws://127.0.0.1:{port}/subscribe", flush_seconds=0.05,
                        backoff=Backoff(base=0.01, cap=0.05))
    thread = threading.Thread(target=consumer.run)
    thread.start()
    try:
        wait_until(lambda: health.snapshot()["failed_attempts"] >= 3)
        page = admin_client.get("/admin/").text
        metrics = admin_client.get("/metrics").text
    finally:
        consumer.stop()
        thread.join(timeout=20)
        connections.close_all()
    text = module_text(page, "indexer-health")
    assert re.search(r"Status (disconnected|connecting) \(reported 0 minutes ago\)", text), text
    assert f"Jetstream ws://127.0.0.1:{port}/subscribe" in text
    assert re.search(
        r"Last connection error could not connect: ConnectionRefusedError: \[Errno 111\] Connection refused "
        r"\(0 minutes ago; \d+ failed attempts in a row\)", text), text
    assert re.search(r"Reconnects [3-9]|Reconnects \d\d", text), text
    assert "Last event received none yet" in text
    assert "Cursor none saved yet" in text
    assert "Lag unknown" in text
    assert re.search(r'^skyline_indexer_state\{state="(disconnected|connecting)"\} 1\.0$', metrics, re.M)
    assert re.search(r'^skyline_indexer_state\{state="connected"\} 0\.0$', metrics, re.M)
    assert re.search(r"^skyline_indexer_lag_seconds NaN$", metrics, re.M)
    # Once stopped, it says so.
    assert health.snapshot()["state"] == "stopped"
    assert metric("skyline_indexer_state", state="stopped") == 1.0
    assert "Status stopped" in module_text(admin_client.get("/admin/").text, "indexer-health")


def test_a_replay_shows_its_progress_and_saves_no_cursor(admin_client, tmp_path):
    events = story()
    recording = tmp_path / "events.jsonl"
    recording.write_bytes(b"".join(line(event) + b"\n" for event in events))
    seen = []

    class Progress:
        """A tqdm stand-in that notes the state published while the replay runs."""

        def __init__(self, total, **options):
            self.n = 0

        def update(self, count):
            self.n += count
            seen.append(health.snapshot()["state"])

        def close(self):
            pass

    Consumer(replay=str(recording), batch_size=2, progress=Progress).run()
    connections.close_all()
    assert seen and set(seen) == {"replaying"}
    replay = health.snapshot()["replay"]
    size = recording.stat().st_size
    assert replay == {"path": str(recording), "bytes_total": size, "bytes_read": size, "events": len(events),
                      "done": True}
    text = module_text(admin_client.get("/admin/").text, "indexer-health")
    assert "Status stopped" in text
    shown = f"{size / 1000:.1f} kB"
    assert f"Replay done: {shown} of {shown} (100%) of {recording}, {len(events)} events read" in text
    assert re.search(r"Last event received \d+\.\d s ago", text)
    assert "Cursor none saved (a replay saves no cursor)" in text


def test_the_plc_copy_shows_its_progress_errors_and_the_disk_a_full_copy_takes(admin_client):
    with PlcExport() as directory:
        for n in range(5):
            directory.add(did_plc(f"user{n}"), plc_operation(f"user{n}.test", "https://pds.example"), n)
        directory.fail(2)
        PlcExporter(url=directory.url, rate=1000, page_size=2, until_caught_up=True,
                    backoff=Backoff(base=0.001, cap=0.002)).run()
    connections.close_all()
    ((rows, size),) = query("SELECT sum(rows), sum(bytes_on_disk) FROM system.parts"
                            " WHERE active AND database = currentDatabase() AND table = 'plc_operations'")
    assert rows == 5
    text = module_text(admin_client.get("/admin/").text, "plc-health")
    assert "Status stopped (reported 0 minutes ago)" in text
    assert f"Directory {directory.url}" in text
    assert "Operations stored 5 (5 copied in 3 pages by this run, last page 0 minutes ago)" in text
    assert "Cursor 5" in text
    assert "Errors 2 (http_status: 2)" in text
    assert "Last error /export answered HTTP 500 (0 minutes ago)" in text
    kilobytes = f"{size / 1000:.1f} kB"
    assert f"Disk {kilobytes} ({size / 5:.0f} bytes per operation)" in text
    assert (f"Full copy {kilobytes} for 5 operations (caught up), if every operation takes as much disk as "
            "those stored") in text


def test_an_exporter_that_never_ran_is_not_reporting(admin_client):
    text = module_text(admin_client.get("/admin/").text, "plc-health")
    assert text.startswith("PLC directory copy Status not reporting")
    assert "Operations stored 0" in text
    assert "Full copy unknown until some operations are copied" in text
