"""Health endpoints and the answer given when a store is down.

/healthz says the process is up; /readyz says whether it can do its work (every store answers).
A request that fails because a store is unavailable gets a 503 with a JSON error, not a traceback.
"""

import logging

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

log = logging.getLogger(__name__)

STORE_ERRORS = (OperationalError, InterfaceError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _check_database(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_cache():
    cache.set("health:probe", 1, 10)
    if cache.get("health:probe") != 1:
        raise OperationalError("the cache did not keep a value")


def check_stores():
    """{store: None if it answers, else a short reason}."""
    checks = {"relational": lambda: _check_database("default"), "clickhouse": lambda: _check_database("clickhouse")}
    if settings.REDIS_URL:
        checks["redis"] = _check_cache
    results = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = None
        except (DatabaseError, *STORE_ERRORS) as exc:
            results[name] = str(exc).splitlines()[0][:200] or type(exc).__name__
    return results


@never_cache
def healthz(request):
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request):
    results = check_stores()
    down = {name: reason for name, reason in results.items() if reason}
    body = {"status": "unavailable" if down else "ok", "stores": {name: reason or "ok" for name, reason in results.items()}}
    return JsonResponse(body, status=503 if down else 200)


class StoreUnavailableMiddleware:
    """Turn 'a store is down' into 503 Service Unavailable with a clear JSON error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, STORE_ERRORS):
            return None
        return store_unavailable(request, exception)


def store_unavailable(request, exception):
    """The 503 answer to a request that failed on `exception`, a store error."""
    log.warning("store unavailable during %s %s: %s", request.method, request.path,
                str(exception).splitlines()[0] if str(exception) else type(exception).__name__)
    response = JsonResponse(
        {"error": "ServiceUnavailable", "message": "A data store is unavailable; try again shortly."},
        status=503,
    )
    response["Retry-After"] = "5"
    return response
