"""Health, readiness and metrics endpoints, and 503s (not 500s) while a store is down."""

import pytest
from django.db import connections

from tests.support.servers import LoopbackServer
from tests.support.stores import BOTH_STORES, closed_port

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)


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

    from tests.support.jetstream import JetstreamServer

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


def _manage(tmp_path, *arguments, **variables):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path), **variables}
    return subprocess.run([sys.executable, "manage.py", *arguments], cwd=Path(__file__).resolve().parent.parent,
                          env=env, capture_output=True, text=True, timeout=300)


def _run_python(tmp_path, code, **variables):
    return _manage(tmp_path, "shell", "--no-imports", "-c", code, **variables)


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


class Collector(LoopbackServer):
    """An OTLP/HTTP trace collector: takes every export, keeps its spans."""

    def handle(self, request):
        return 200, {"Content-Type": "application/x-protobuf"}, b""

    def spans(self):
        """{span name: [(span, its resource's service.name)]} of everything exported to /v1/traces."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        spans = {}
        for request in self.requests:
            assert request.path == "/v1/traces"
            export = ExportTraceServiceRequest.FromString(request.body)
            for resource_spans in export.resource_spans:
                service = _attributes(resource_spans.resource.attributes)["service.name"]
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        spans.setdefault(span.name, []).append((span, service))
        return spans


def _attributes(attributes):
    def value(any_value):
        kind = any_value.WhichOneof("value")
        if kind == "array_value":
            return [value(item) for item in any_value.array_value.values]
        return getattr(any_value, kind)

    return {attribute.key: value(attribute.value) for attribute in attributes}


def test_a_feed_request_a_consumer_batch_a_plc_page_and_a_task_are_traced_to_the_otlp_endpoint(tmp_path, redis_url):
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    from tests.support.firehose_events import ALICE, BOB, T0, follow, line, post
    from tests.support.plc_export import PlcExport, plc_operation

    for database in ("default", "clickhouse"):
        migrated = _manage(tmp_path, "migrate", "--database", database, "-v0")
        assert migrated.returncode == 0, migrated.stderr
    recording = tmp_path / "events.jsonl"
    recording.write_bytes(line(post(ALICE, "3lpost000001a", T0, "hello"))
                          + line(follow(BOB, "3lfollow0001a", T0 + 5, ALICE)))
    code = (
        "from django.conf import settings\n"
        "from django.core.management import call_command\n"
        "from django.test import Client\n"
        "from opentelemetry import trace\n"
        "from apps.indexer.plc import PlcExporter\n"
        "assert settings.MIDDLEWARE[0] == 'opentelemetry.instrumentation.django.middleware.otel_middleware"
        "._DjangoMiddleware', settings.MIDDLEWARE\n"
        "feed = f'at://{settings.FEED_ACTOR_DID}/app.bsky.feed.generator/whats-hot'\n"
        "response = Client(HTTP_HOST='localhost').get('/xrpc/app.bsky.feed.getFeedSkeleton', {'feed': feed})\n"
        "assert response.status_code == 200, response.content\n"
        f"call_command('consume_firehose', '--replay', {str(recording)!r})\n"
        "PlcExporter(url=settings.PLC_URL, until_caught_up=True).run()\n"
        "from apps.feeds.tasks import prune_request_analytics\n"
        "prune_request_analytics.apply()\n"
        "trace.get_tracer_provider().force_flush()\n"
    )
    with PlcExport() as directory, Collector() as collector:
        directory.add("did:plc:tracedaaaaaaaaaaaaaaaaaa", plc_operation("traced.example", "https://pds.example"), 0)
        result = _run_python(tmp_path, code, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, SERVICE_NAME="skyline-web",
                             PLC_URL=directory.url, OUTBOUND_ALLOW_PRIVATE="true", REDIS_URL=redis_url)
        assert result.returncode == 0, result.stderr
        spans = collector.spans()

    ((request, service),) = spans["GET xrpc/app.bsky.feed.getFeedSkeleton"]
    assert service == "skyline-web"
    assert request.kind == Span.SPAN_KIND_SERVER
    assert _attributes(request.attributes)["http.status_code"] == 200
    # The feed's ranking query, run for this request, is a client span in its trace.
    queries = [_attributes(span.attributes) for span, _ in spans["SELECT"] if span.trace_id == request.trace_id]
    assert [(query["db.system.name"], query["db.namespace"]) for query in queries
            if "FROM recent_posts" in query["db.query.text"]] == [("clickhouse", "default")]

    ((batch, _),) = spans["firehose.batch"]
    assert _attributes(batch.attributes) == {
        "firehose.rows": 4, "firehose.tables": ["follows", "posts", "repo_records"], "firehose.cursor": T0 + 5}

    ((page, _),) = spans["plc.page"]
    assert _attributes(page.attributes) == {"plc.after": "0", "plc.operations": 1}
    within_page = sorted((span.name, _attributes(span.attributes).get("db.system", "")) for name in ("GET", "SET")
                         for span, _ in spans[name] if span.parent_span_id == page.span_id)
    assert within_page == [("GET", ""), ("SET", "redis")]  # the /export fetch, the cursor saved in Redis
    (fetch,) = [span for span, _ in spans["GET"] if span.parent_span_id == page.span_id]
    assert fetch.kind == Span.SPAN_KIND_CLIENT
    assert _attributes(fetch.attributes)["http.url"] == f"{directory.url}/export?count=1000&after=0"

    ((task, _),) = spans["run/apps.feeds.tasks.prune_request_analytics"]
    assert sorted(_attributes(span.attributes)["db.query.text"].split(" WHERE")[0] for span, _ in spans["ALTER"]
                  if span.parent_span_id == task.span_id) == [
        "ALTER TABLE feed_interactions DELETE", "ALTER TABLE feed_request_analytics DELETE"]


def test_without_an_endpoint_nothing_is_instrumented(client):
    import httpx
    import redis
    from django.conf import settings

    from skyline import tracing

    assert settings.OTEL_EXPORTER_OTLP_ENDPOINT == ""
    assert not tracing._configured
    assert not any(name.startswith("opentelemetry") for name in settings.MIDDLEWARE)
    assert client.get("/readyz").status_code == 200
    # The store's own query timing (skyline/db/metrics.py) stays; no span wrapper joins it.
    assert tracing._query_span not in connections["clickhouse"].execute_wrappers
    assert tracing._query_span not in connections["default"].execute_wrappers
    assert not hasattr(httpx.HTTPTransport.handle_request, "__wrapped__")
    assert not hasattr(redis.Redis.execute_command, "__wrapped__")
