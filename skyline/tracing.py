"""OpenTelemetry tracing, on only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

Spans go to the OTLP/HTTP exporter (which reads the standard OTEL_* variables itself); requests get
a server span from TracingMiddleware, and code marks its own work with `tracer().start_as_current_span`.
"""

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from opentelemetry import trace

_configured = False


def configure():
    global _configured
    if _configured or not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
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
    _configured = True


def tracer():
    return trace.get_tracer("skyline")


class TracingMiddleware:
    """A server span per request, named for the route once Django has resolved it."""

    def __init__(self, get_response):
        if not _configured:
            raise MiddlewareNotUsed  # tracing is off: not even a call per request
        self.get_response = get_response

    def __call__(self, request):
        with tracer().start_as_current_span(
            f"{request.method} {request.path}", kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": request.method, "url.path": request.path},
        ) as span:
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            if match is not None and match.route:
                span.update_name(f"{request.method} /{match.route}")
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return response
