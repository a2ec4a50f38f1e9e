"""OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Spans go to the OTLP/HTTP exporter (which reads the standard OTEL_* variables itself). The maintained
instrumentations trace Django requests, Celery tasks, outbound httpx calls and Redis commands; every
database query gets a client span through Django's execute wrappers, which see the queries of all
the backends (chDB's own DB-API driver included), where a DB-API instrumentation would see one
driver's. Code marks its own work with `tracer().start_as_current_span`. With tracing off nothing is
installed: no middleware, no wrapped method, no query wrapper, and the OpenTelemetry API is loaded
only when code first asks for a tracer (its spans are then no-ops).
"""

from django.conf import settings
from django.db.backends.signals import connection_created

_configured = False


def configure():
    global _configured
    if _configured or not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.SERVICE_NAME}),
        sampler=ParentBased(TraceIdRatioBased(settings.TRACING_SAMPLE_RATIO)),
    )
    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    # First in MIDDLEWARE, so that requests answered early (skyline/hot_paths.py) are traced too.
    DjangoInstrumentor().instrument()
    # Connected here, before a worker forks its children (the SDK restarts its export thread in each).
    CeleryInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    RedisInstrumentor().instrument()
    connection_created.connect(_trace_queries)
    _configured = True


def tracer():
    from opentelemetry import trace

    return trace.get_tracer("skyline")


def _trace_queries(sender, connection, **kwargs):
    # The signal comes again on every reconnect of the same Django connection.
    if _query_span not in connection.execute_wrappers:
        connection.execute_wrappers.append(_query_span)


def _query_span(execute, sql, params, many, context):
    """A client span around one query; its text has placeholders, never the parameters' values."""
    from opentelemetry import trace

    connection = context["connection"]
    operation = sql.split(None, 1)[0].upper() if sql.strip() else "QUERY"
    with tracer().start_as_current_span(
        operation, kind=trace.SpanKind.CLIENT,
        attributes={"db.system.name": connection.vendor, "db.namespace": str(connection.settings_dict["NAME"] or ""),
                    "db.operation.name": operation, "db.query.text": sql},
    ):
        return execute(sql, params, many, context)
