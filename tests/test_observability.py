"""Health, readiness and metrics endpoints, and 503s (not 500s) while a store is down."""

import socket

import pytest
from django.db import connections

from skyline.db.clickhouse.base import DatabaseWrapper as ServerWrapper
from tests.conftest import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def clickhouse_down():
    """Swap the ClickHouse connection for one to a server that is not there; calling the fixture's
    value (or the end of the test) puts the real one back."""
    healthy = connections["clickhouse"]
    settings_dict = {
        **healthy.settings_dict, "ENGINE": "skyline.db.clickhouse", "HOST": "127.0.0.1", "PORT": closed_port(),
        "NAME": "default", "USER": "default", "PASSWORD": "",
        "OPTIONS": {"connect_timeout": 1, "send_receive_timeout": 1, "sync_request_timeout": 1},
    }
    connections["clickhouse"] = ServerWrapper(settings_dict, alias="clickhouse")

    def restore():
        if connections["clickhouse"] is not healthy:
            connections["clickhouse"].close()
            connections["clickhouse"] = healthy

    yield restore
    restore()


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_store(client, settings):
    response = client.get("/readyz")
    assert response.status_code == 200
    stores = {"relational": "ok", "clickhouse": "ok", **({"redis": "ok"} if settings.REDIS_URL else {})}
    assert response.json() == {"status": "ok", "stores": stores}


def test_readyz_is_503_and_names_the_store_that_is_down_then_recovers(client, clickhouse_down):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["stores"]["relational"] == "ok"
    assert body["stores"]["clickhouse"] != "ok"
    clickhouse_down()  # the store comes back
    response = client.get("/readyz")
    assert (response.status_code, response.json()["status"]) == (200, "ok")


def test_a_request_that_needs_a_missing_store_gets_a_503_json_error(client, clickhouse_down, settings):
    settings.ROOT_URLCONF = "tests.urls_probe"
    response = client.get("/probe")
    assert response.status_code == 503
    assert response.json() == {"error": "ServiceUnavailable", "message": "A data store is unavailable; try again shortly."}
    assert response["Retry-After"] == "5"
    clickhouse_down()
    assert client.get("/probe").status_code == 200


def test_metrics_count_requests_by_route(client):
    client.get("/healthz")
    body = client.get("/metrics").content.decode()
    assert 'skyline_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    assert "skyline_http_request_duration_seconds_bucket" in body


def test_a_made_up_http_method_counts_as_other(client):
    statuses = {client.generic(f"MADEUP{i}", "/healthz").status_code for i in range(5)}
    assert len(statuses) == 1
    body = client.get("/metrics").content.decode()
    assert "MADEUP" not in body
    (status,) = statuses
    assert f'skyline_http_requests_total{{method="other",route="/healthz",status="{status}"}} 5.0' in body


def test_the_standalone_consumer_serves_its_metrics_on_metrics_port(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from tests.jetstream import JetstreamServer

    root = Path(__file__).resolve().parent.parent
    port = closed_port()
    event = (b'{"did":"did:plc:metricsaaaaaaaaaaaaaaaaa","time_us":1767225600000000,"kind":"commit","commit":'
             b'{"rev":"3l","operation":"create","collection":"app.bsky.graph.follow","rkey":"3lmetrics","cid":"bafy",'
             b'"record":{"$type":"app.bsky.graph.follow","subject":"did:plc:otheraaaaaaaaaaaaaaaaaaa",'
             b'"createdAt":"2026-01-01T00:00:00Z"}}}')
    with JetstreamServer([event]) as jetstream:
        env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path), "JETSTREAM_URL": jetstream.url,
               "METRICS_PORT": str(port), "JETSTREAM_FLUSH_SECONDS": "0.1"}
        for database in ("default", "clickhouse"):
            subprocess.run([sys.executable, "manage.py", "migrate", "--database", database, "-v0"], cwd=root,
                           env=env, check=True, timeout=120)
        consumer = subprocess.Popen([sys.executable, "manage.py", "consume_firehose"], cwd=root, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 30
            body = ""
            while 'skyline_indexer_cursor_time_us 1.7672256e+15' not in body:
                assert time.monotonic() < deadline, body[-2000:]
                time.sleep(0.2)
                try:
                    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    continue
            assert 'skyline_indexer_events_total{' in body
        finally:
            consumer.send_signal(signal.SIGTERM)
            consumer.communicate(timeout=60)
    assert consumer.returncode == 0


def _run_python(tmp_path, code, **variables):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path), **variables}
    return subprocess.run([sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
                          cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True,
                          timeout=120)


def test_logs_are_json_lines_when_not_on_a_terminal(tmp_path):
    import json

    result = _run_python(tmp_path, "import logging; logging.getLogger('skyline.test').warning('disk %s', 'full')")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert (record["level"], record["logger"], record["message"]) == ("WARNING", "skyline.test", "disk full")
    assert "time" in record


def test_logs_are_readable_lines_when_asked_for_text(tmp_path):
    result = _run_python(tmp_path, "import logging; logging.getLogger('skyline.test').warning('disk full')",
                         LOG_FORMAT="text")
    assert result.stderr.strip().splitlines()[-1].endswith(" WARNING skyline.test: disk full")


def test_requests_are_traced_to_the_otlp_endpoint_when_one_is_set(tmp_path):
    from tests.servers import LoopbackServer

    class Collector(LoopbackServer):
        def handle(self, request):
            return 200, {"Content-Type": "application/x-protobuf"}, b""

    code = (
        "from django.test import Client\n"
        "from opentelemetry import trace\n"
        "assert Client(HTTP_HOST='localhost').get('/healthz').status_code == 200\n"
        "trace.get_tracer_provider().force_flush()\n"
    )
    with Collector() as collector:
        result = _run_python(tmp_path, code, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, SERVICE_NAME="skyline-web")
        assert result.returncode == 0, result.stderr
    exports = [request for request in collector.requests if request.path == "/v1/traces"]
    assert len(exports) == 1
    assert b"GET /healthz" in exports[0].body
    assert b"skyline-web" in exports[0].body


def test_nothing_is_exported_without_an_endpoint(tmp_path):
    code = "from django.test import Client\nfrom skyline import tracing\nprint(tracing._configured)\n"
    result = _run_python(tmp_path, code)
    assert result.stdout.strip().splitlines()[-1] == "False"
