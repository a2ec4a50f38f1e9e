"""The XRPC hot path, answered past the middleware it has no use for.

getFeedSkeleton reads no session, cookie, form or user: its callers are anonymous or present a
service token, which the view checks itself. Sessions, CSRF, authentication, messages, static
files and the common middleware add nothing to it but time.

Two ways in, with the same answers:
- HotPathApplication, the WSGI application gunicorn runs (skyline/wsgi.py), answers these paths in
  front of Django's handler and its middleware: a profile of `manage.py serve` under load had the
  middleware stack, the handler and gunicorn's socket writes as most of a feed request's time. It
  still checks the Host against ALLOWED_HOSTS, adds the security middleware's headers, counts the
  request in the request metrics, has database connections recycled as Django's request signals
  do, turns a store error into the 503 of skyline/health.py and any other error into the answer
  of skyline/api_errors.py (a 400 for a query with too many fields, else the logged 500).
  Anything it would answer differently from Django (another method, a Host that is not allowed,
  an HTTPS redirect) goes to Django unchanged, and so does everything when tracing is on, so that
  the instrumentation's middleware makes the request's span.
  Without an https redirect or HSTS (the embedded default), getFeedSkeleton is answered without a
  Django request or response at all (HotPathApplication._lean, the view's `answer`): the
  query string is parsed as QueryDict would, an allowed Host is remembered, the security headers
  are computed once, and the request signals are sent only when a database connection of the
  thread needs them (_RequestSignals). A profile under load had these, in that order: the
  signals, QueryDict, the Host check and the security middleware, as most of the path's own time.
- HotPathMiddleware, placed right after the security middleware, does the same inside Django for
  whatever calls Django's handler directly (the test client, tracing on).

The body goes out as one bytes item with its Content-Length, in one socket write with the head
when the server is gunicorn (OneWriteResponse). Without a length, gunicorn sends a body in chunks:
the head, the chunk and the closing chunk were three writes, each a trip through the TCP stack.
"""

import atexit
import gc
import threading
import time
from http import HTTPStatus
from urllib.parse import parse_qsl

from django.conf import settings
from django.core import signals
from django.core.cache import caches, close_caches
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections, reset_queries
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from django.core.handlers.base import reset_urlconf
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.urls import resolve
from gunicorn.http.wsgi import Response as GunicornResponse

from skyline.api_errors import view_error
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
        except Exception as exc:  # what the middleware's process_exception would see on the usual way
            return _failure(request, exc)


class HotPathApplication:
    """A WSGI application that answers GET on HOT_PATHS itself and hands every other request to `django`."""

    def __init__(self, django):
        self.django = django
        self.security = SecurityMiddleware(lambda request: None)
        self.views = {path: resolve(path).func for path in HOT_PATHS}
        # A hot view may offer `answer(parameters, authorization)` -> (status, JSON body bytes): its
        # answer without a Django request (getFeedSkeleton does, apps/feeds/api.py).
        self.answers = {path: getattr(view, "answer", None) for path, view in self.views.items()}
        self.latency = {path: LATENCY.labels(path) for path in HOT_PATHS}
        self.counters = {}  # (path, status) -> the request counter's child
        self.hosts = _AllowedHosts()
        # Without an https redirect or HSTS, the security middleware's answer does not depend on the
        # request: its headers are added as they are, and no Django request is built at all.
        self.lean = not (self.security.redirect or self.security.sts_seconds)
        self.security_headers = _security_headers(self.security) if self.lean else ()
        self.signals = _RequestSignals()
        _freeze_what_is_loaded()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if path not in self.views or environ.get("REQUEST_METHOD") != "GET":
            return self.django(environ, start_response)
        started = time.perf_counter()
        answer = self.answers[path]
        if answer is not None and self.lean and self.hosts.allowed(environ):
            parameters = _query_parameters(environ)
            if parameters is not None:
                return self._lean(environ, path, answer, parameters, started, start_response)
        request = WSGIRequest(environ)
        if not _host_allowed(request) or self.security.process_request(request) is not None:
            return self.django(environ, start_response)
        response = self._answer(request, self.views[path])
        return self._send(request, response, started, start_response)

    def _lean(self, environ, path, answer, parameters, started, start_response):
        """The view's answer without a Django request or response: the same status, headers and body."""
        self.signals.started(environ)
        try:
            status, body = answer(parameters, environ.get("HTTP_AUTHORIZATION"))
        except Exception as exc:  # noqa: BLE001  (answered as on the usual way, below)
            self.signals.finished()
            request = WSGIRequest(environ)
            response = self.security.process_response(request, _failure(request, exc))
            return self._send(request, response, started, start_response)
        self.signals.finished()
        headers = [("Content-Type", "application/json"), *self.security_headers,
                   ("Content-Length", str(len(body)))]
        _one_write(start_response)
        start_response(_STATUS_LINES.get(status) or f"{status} {HTTPStatus(status).phrase}", headers)
        self.latency[path].observe(time.perf_counter() - started)
        self._counter(path, status).inc()
        return [body]

    def _answer(self, request, view):
        signals.request_started.send(sender=self.__class__, environ=request.environ)
        try:
            response = view(request)
        except Exception as exc:  # noqa: BLE001  (the logged 500, as on the way through Django)
            response = _failure(request, exc)
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


def _freeze_what_is_loaded():
    """Leave the objects loaded so far (Django, the apps, the URLconf: they live as long as the
    process) out of the garbage collector's full collections.

    Under load, each full collection walked all of them with every request thread stopped: 80 to
    120 ms, several times a minute, which was the p99 of getFeedSkeleton. Garbage is collected
    first, so none is kept; a worker forked after this (gunicorn) inherits the frozen objects.

    They are unfrozen at exit: a frozen object is never collected, and chDB's engine, shut down
    while sessions held in frozen reference cycles were still alive, crashed the process on its way
    out (tests/test_hot_paths.py runs such a process).
    """
    gc.collect()
    gc.freeze()
    atexit.register(gc.unfreeze)


def _failure(request, exc):
    """The answer to a view that raised `exc`: the 503 of a store error, the 400 of a query with too
    many fields, else the logged 500."""
    if isinstance(exc, STORE_ERRORS):
        return store_unavailable(request, exc)
    return view_error(request, exc)


def _host_allowed(request):
    try:
        request.get_host()
    except DisallowedHost:
        return False
    return True


class _AllowedHosts:
    """Whether a request's Host is allowed, as HttpRequest.get_host decides, remembered per Host.

    The Host is the Host header, or without one the server's name, port and scheme. Only allowed
    ones are remembered, and at most MAX of them, so made-up Hosts cannot grow the memory; it is
    dropped when ALLOWED_HOSTS or DEBUG change (tests override them).
    """

    MAX = 64

    def __init__(self):
        self.known = set()
        self.settings = None

    def allowed(self, environ):
        if settings.USE_X_FORWARDED_HOST:
            return False  # Django's request decides
        host = environ.get("HTTP_HOST") or (
            environ.get("SERVER_NAME"), environ.get("SERVER_PORT"), environ.get("wsgi.url_scheme"),
            environ.get(settings.SECURE_PROXY_SSL_HEADER[0]) if settings.SECURE_PROXY_SSL_HEADER else None,
        )
        current = (id(settings.ALLOWED_HOSTS), settings.DEBUG)
        if current != self.settings:
            self.known, self.settings = set(), current
        if host in self.known:
            return True
        if not _host_allowed(WSGIRequest(environ)):
            return False
        if len(self.known) < self.MAX:
            self.known.add(host)
        return True


def _security_headers(security):
    """The headers the security middleware adds to a JSON answer when HSTS is off."""
    probe = HttpResponse(content_type="application/json")
    security.process_response(None, probe)
    return tuple((name, value) for name, value in probe.items() if name != "Content-Type")


def _query_parameters(environ):
    """{name: last value} of the query string, decoded as Django's QueryDict does; None when it has
    more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS (the Django request's TooManyFieldsSent, a 400)."""
    query = environ.get("QUERY_STRING", "")
    if not query.isascii():
        raw = query.encode("iso-8859-1")  # how WSGI servers hand over the bytes
        try:
            query = raw.decode(settings.DEFAULT_CHARSET)
        except UnicodeDecodeError:
            query = raw.decode("iso-8859-1")
    try:
        return dict(parse_qsl(query, keep_blank_values=True, encoding=settings.DEFAULT_CHARSET,
                              max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS))
    except ValueError:
        return None


_RECEIVERS = {
    signals.request_started: {reset_queries, close_old_connections},
    signals.request_finished: {close_old_connections, close_caches, reset_urlconf},
}
_this_thread = threading.local()


@receiver(connection_created)
def _remember_connection(sender, connection, **kwargs):
    """Note which database connections this thread has opened (the request signals' business)."""
    opened = getattr(_this_thread, "connections", None)
    if opened is None:
        opened = _this_thread.connections = {}
    opened[connection.alias] = connection


class _RequestSignals:
    """Django's request signals, sent when they have something to do.

    Connected are only Django's own receivers (checked when the application is built): they reset
    the query logs and close the connections that are unusable or past CONN_MAX_AGE, all on the
    thread's open database connections; close the caches, which for the local memory and Redis
    backends does nothing; and reset the thread's URLconf, which this path never sets. A thread
    with no database connection open (the usual case: a feed page comes from the caches), or whose
    connections are as the last recycling left them (kept open by CONN_MAX_AGE, not used since),
    gives them nothing to do: they are not sent. With other receivers, or a cache that has
    something to close, they are always sent.
    """

    def __init__(self):
        self.always = any(_live(signal) - known for signal, known in _RECEIVERS.items()) or any(
            type(cache).close is not BaseCache.close for cache in caches.all(initialized_only=False)
        )

    def started(self, environ):
        if self.always or _connections_due():
            signals.request_started.send(sender=HotPathApplication, environ=environ)

    def finished(self):
        if self.always or _connections_due():
            signals.request_finished.send(sender=HotPathApplication)


def _live(signal):
    sync, asynchronous = signal._live_receivers(HotPathApplication)
    return set(sync) | set(asynchronous)


def _connections_due():
    """Whether the receivers would do anything to one of this thread's open database connections:
    the conditions close_if_unusable_or_obsolete checks, a health check to be done again, a query log
    to reset. A connection left as it was after the last request's recycling has none of them."""
    opened = getattr(_this_thread, "connections", None)
    return opened is not None and any(_due(connection) for connection in opened.values())


def _due(connection):
    if connection.connection is None:
        return False
    return bool(
        connection.errors_occurred or connection.health_check_done or connection.queries_log
        or connection.autocommit != connection.settings_dict["AUTOCOMMIT"]
        or (connection.close_at is not None and time.monotonic() >= connection.close_at)
    )


_STATUS_LINES = {
    status: f"{status} {HTTPStatus(status).phrase}" for status in (200, 400, 401, 404, 413, 500, 503)
}


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
