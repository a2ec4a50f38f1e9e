"""The XRPC hot path, answered past the middleware it has no use for.

getFeedSkeleton reads no session, cookie, form or user: its callers are anonymous or present a
service token, which the view checks itself. Sessions, CSRF, authentication, messages, static
files and the common middleware add nothing to it but time.

Two ways in, with the same answers:
- HotPathApplication, the WSGI application gunicorn runs (skyline/wsgi.py), answers these paths in
  front of Django's handler and its middleware: a profile of `manage.py serve` under load had the
  middleware stack, the handler and gunicorn's socket writes as most of a feed request's time. It
  still checks the Host against ALLOWED_HOSTS, adds the security middleware's headers, counts the
  request in the request metrics, sends Django's request signals (so database connections are
  recycled as on any request), turns a store error into the 503 of skyline/health.py and any other
  error into the logged 500 of skyline/api_errors.py. Anything it would answer differently from
  Django (another method, a Host that is not allowed, an HTTPS redirect) goes to Django unchanged,
  and so does everything when tracing is on, so that the instrumentation's middleware makes the
  request's span.
- HotPathMiddleware, placed right after the security middleware, does the same inside Django for
  whatever calls Django's handler directly (the test client, tracing on).

The body goes out as one bytes item with its Content-Length, in one socket write with the head
when the server is gunicorn (OneWriteResponse). Without a length, gunicorn sends a body in chunks:
the head, the chunk and the closing chunk were three writes, each a trip through the TCP stack.
"""

import time

from django.core import signals
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.middleware.security import SecurityMiddleware
from django.urls import resolve
from gunicorn.http.wsgi import Response as GunicornResponse

from skyline.api_errors import unexpected_error
from skyline.health import STORE_ERRORS, store_unavailable
from skyline.metrics import LATENCY, REQUESTS

HOT_PATHS = frozenset({"/xrpc/app.bsky.feed.getFeedSkeleton"})


class HotPathMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info not in HOT_PATHS:
            return self.get_response(request)
        request.get_host()  # DisallowedHost (a 400) for a Host not in ALLOWED_HOSTS, as CommonMiddleware would
        match = request.resolver_match = resolve(request.path_info)
        try:
            return match.func(request, *match.args, **match.kwargs)
        except STORE_ERRORS as exc:
            return store_unavailable(request, exc)
        except Exception as exc:  # what the middleware's process_exception would see on the usual way
            return unexpected_error(request, exc)


class HotPathApplication:
    """A WSGI application that answers GET on HOT_PATHS itself and hands every other request to `django`."""

    def __init__(self, django):
        self.django = django
        self.security = SecurityMiddleware(lambda request: None)
        self.views = {path: resolve(path).func for path in HOT_PATHS}
        self.latency = {path: LATENCY.labels(path) for path in HOT_PATHS}
        self.counters = {}  # (path, status) -> the request counter's child

    def __call__(self, environ, start_response):
        view = self.views.get(environ.get("PATH_INFO"))
        if view is None or environ.get("REQUEST_METHOD") != "GET":
            return self.django(environ, start_response)
        started = time.perf_counter()
        request = WSGIRequest(environ)
        if not _host_allowed(request) or self.security.process_request(request) is not None:
            return self.django(environ, start_response)
        response = self._answer(request, view)
        return self._send(request, response, started, start_response)

    def _answer(self, request, view):
        signals.request_started.send(sender=self.__class__, environ=request.environ)
        try:
            response = view(request)
        except STORE_ERRORS as exc:
            response = store_unavailable(request, exc)
        except Exception as exc:  # noqa: BLE001  (the logged 500, as on the way through Django)
            response = unexpected_error(request, exc)
        finally:
            signals.request_finished.send(sender=self.__class__)
        return self.security.process_response(request, response)

    def _send(self, request, response, started, start_response):
        path, status = request.path_info, response.status_code
        body = response.content
        headers = list(response.items())
        if "Content-Length" not in response:
            headers.append(("Content-Length", str(len(body))))
        headers.extend(("Set-Cookie", cookie.output(header="")) for cookie in response.cookies.values())
        _one_write(start_response)
        start_response(f"{status} {response.reason_phrase}", headers)
        self.latency[path].observe(time.perf_counter() - started)
        self._counter(path, status).inc()
        return [body]

    def _counter(self, path, status):
        counter = self.counters.get((path, status))
        if counter is None:
            counter = self.counters[(path, status)] = REQUESTS.labels(path, "GET", str(status))
        return counter


def _host_allowed(request):
    try:
        request.get_host()
    except DisallowedHost:
        return False
    return True


class _KeptHead:
    """Stands in for the socket while gunicorn writes a response's head: the bytes are kept."""

    data = b""

    def sendall(self, data):
        self.data += data


class OneWriteResponse(GunicornResponse):
    """gunicorn's response with its head held back and sent with the first body bytes, in one write.

    gunicorn writes the head and each body item with a sendall of their own; on loopback most of a
    small answer's serving time was in those calls. The head is what gunicorn itself makes.
    """

    _head = b""

    def send_headers(self):
        if self.headers_sent:
            return
        sock, self.sock = self.sock, _KeptHead()
        try:
            super().send_headers()
            self._head = self.sock.data
        finally:
            self.sock = sock

    def _emit_body(self, data):
        if self._head and not self.chunked:
            data, self._head = self._head + data, b""
            self.sock.sendall(data)
            return
        self._send_head()
        super()._emit_body(data)

    def close(self):
        self.send_headers()
        self._send_head()
        super().close()

    def _send_head(self):
        if self._head:
            head, self._head = self._head, b""
            self.sock.sendall(head)


def _one_write(start_response):
    """Make gunicorn's response to this request a OneWriteResponse; other servers are left alone."""
    response = getattr(start_response, "__self__", None)
    if type(response) is GunicornResponse:
        response.__class__ = OneWriteResponse
