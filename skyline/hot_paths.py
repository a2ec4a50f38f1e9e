"""The XRPC hot path, answered past the middleware it has no use for.

getFeedSkeleton reads no session, cookie, form or user: its callers are anonymous or present a
service token, which the view checks itself. Sessions, CSRF, authentication, messages, static
files and the common middleware add nothing to it but time, so HotPathMiddleware, placed right
after the security middleware, resolves these paths and calls their views itself. Tracing, metrics
and the security headers still wrap them, the Host is still checked against ALLOWED_HOSTS, and a
store error still gets the 503 of skyline/health.py and any other error the logged 500 of
skyline/api_errors.py.
"""

from django.urls import resolve

from skyline.api_errors import unexpected_error
from skyline.health import STORE_ERRORS, store_unavailable

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
