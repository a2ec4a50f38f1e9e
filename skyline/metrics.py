"""Prometheus metrics over HTTP, for every role.

The web app serves them at /metrics; other roles (consumer, worker) call serve_metrics(port).
Gunicorn with several workers sets PROMETHEUS_MULTIPROC_DIR (read by prometheus_client itself) so
the workers' metrics are summed.
"""

import time

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

# Label values come from fixed sets: a client that makes up method names must not make up series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

REQUESTS = Counter("skyline_http_requests_total", "HTTP requests served", ["route", "method", "status"])
LATENCY = Histogram(
    "skyline_http_request_duration_seconds", "Time to answer an HTTP request", ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _registry():
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_view(request):
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def serve_metrics(port, address="0.0.0.0"):
    """Expose /metrics on its own port, for roles without a web server."""
    start_http_server(port, addr=address)


class RequestMetricsMiddleware:
    """Count requests and time them by route (the URL pattern, never the raw path) and method."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = f"/{match.route}" if match is not None and match.route else "unmatched"
        LATENCY.labels(route).observe(time.perf_counter() - started)
        method = request.method if request.method in _METHODS else "other"
        REQUESTS.labels(route, method, str(response.status_code)).inc()
        return response
