"""Skyline's error vocabulary for its APIs: the two answer shapes, their one handler each, the one
validation wording, domain errors' statuses, and JSON 404, 405 and 500 answers on the API paths.

Two shapes are contracts. XRPC clients (`/xrpc/`, `/.well-known/`) read `{"error", "message"}`
(`XrpcError`, answered by `xrpc_error`); the search, clean-up, repo export and label APIs read
`{"error": "..."}` (`ApiError`, answered by `api_error`). A domain module raises a domain error
(skyline/errors.py) and the API answers it with the status `STATUS_OF` its kind. A store that is down
is the one 503 of skyline/health.py; anything else unexpected is logged here and answered with a
500 in the path's shape, never taken for an outage. A query with more fields than Django reads
(DATA_UPLOAD_MAX_NUMBER_FIELDS) is the client's: a 400 in the path's shape, not logged as an error.

Django answers an unknown path with an HTML page and django-ninja a wrong method with a text 405;
a client of an API parses JSON, so those are answered in the API's shape too (an unknown XRPC method
is XRPC's 501 MethodNotImplemented). Pages outside the APIs (the admin, `/`) keep Django's own answers.
"""

import logging

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import JsonResponse

from skyline.errors import Kind
from skyline.health import STORE_ERRORS

log = logging.getLogger(__name__)

# Paths under these belong to an API, so an unknown one is an API's 404.
API_PREFIXES = ("/api/", "/xrpc/", "/repo/", "/list/", "/.well-known/")
XRPC_PREFIXES = ("/xrpc/", "/.well-known/")
# The seed's API paths at the root, outside API_PREFIXES.
API_PATHS = frozenset({
    "/stats", "/redir", "/feed_members", "/assign_user_to_feed", "/unassign_user_from_feed",
})

# The status each kind of domain error is answered with.
STATUS_OF = {
    Kind.INVALID: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.TOO_MANY: 429,
    Kind.UPSTREAM: 502,
    Kind.BUSY: 503,
}
UNEXPECTED = "internal server error; it has been logged"
# Where ninja says a parameter came from: the first part of an error's `loc`.
_PLACES = {"body", "query", "path", "header", "cookie", "form", "file"}


class XrpcError(Exception):
    """Skyline's refusal of an XRPC request: `{"error": error, "message": message}` with `status`."""

    def __init__(self, status, error, message):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


class ApiError(Exception):
    """A refusal by the search, clean-up, repo export or label API: `{"error": message}` with `status`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def xrpc_answer(status, error, message):
    return JsonResponse({"error": error, "message": message}, status=status)


def api_answer(status, message):
    return JsonResponse({"error": message}, status=status)


def xrpc_error(request, exc):
    """The answer to an XrpcError (a ninja exception handler, and callable from a plain view)."""
    return xrpc_answer(exc.status, exc.error, exc.message)


def api_error(request, exc):
    """The answer to an ApiError (a ninja exception handler)."""
    return api_answer(exc.status, exc.message)


def refused(exc, prefix=""):
    """The ApiError that answers a domain error (skyline/errors.py): its kind's status, its words."""
    return ApiError(STATUS_OF[exc.kind], f"{prefix}{exc}")


def validation_message(errors):
    """'field: reason; ...' for ninja's validation errors: field names and reasons, never the input
    (an app password, say). A field is named by its path in what the client sent: the place (query,
    body...) is dropped, and so is the body's parameter name, since every API here takes its whole
    JSON body as one parameter; an error about the body as a whole is named `body`."""
    problems = []
    for error in errors:
        loc = list(error.get("loc", ()))
        place = loc.pop(0) if loc and loc[0] in _PLACES else None
        if place == "body" and loc:
            loc.pop(0)
        where = ".".join(str(part) for part in loc) or "body"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(problems)


def view_error(request, exception):
    """The answer to an error a view raised that nothing else answered, in the shape of the API the
    path is in: a 400 for a query or form with more fields than Django reads (the client's doing),
    else the logged 500."""
    xrpc = request.path_info.startswith(XRPC_PREFIXES)
    if isinstance(exception, TooManyFieldsSent):
        message = f"too many parameters; at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} are accepted"
        return xrpc_answer(400, "InvalidRequest", message) if xrpc else api_answer(400, message)
    log.error("unexpected error during %s %s", request.method, request.path, exc_info=exception)
    if xrpc:
        return xrpc_answer(500, "InternalServerError", UNEXPECTED)
    return api_answer(500, UNEXPECTED)


def _is_json(response):
    return response.get("Content-Type", "").startswith("application/json")


def _answer(request, response):
    path = request.path_info
    xrpc = path.startswith(XRPC_PREFIXES)
    if response.status_code == 405:
        # Sorted: django-ninja lists them in no fixed order.
        allowed = ", ".join(sorted(filter(None, response.get("Allow", "").replace(" ", "").split(","))))
        message = f"method {request.method} not allowed; use {allowed}"
        answer = xrpc_answer(405, "InvalidRequest", message) if xrpc else api_answer(405, message)
        answer["Allow"] = allowed
        return answer
    if not path.startswith(API_PREFIXES):
        return response
    if path.startswith("/xrpc/"):
        return xrpc_answer(501, "MethodNotImplemented", f"no such method: {path[6:]}")
    if xrpc:
        return xrpc_answer(404, "NotFound", f"no such path: {path}")
    return api_answer(404, f"not found: {path}")


class JsonApiErrorsMiddleware:
    """Turn the framework's own 404 and 405 pages on API paths into the API's JSON error, a query
    with too many fields into a JSON 400, and an unexpected error on an API path into a logged JSON
    500 (a store error is left to skyline/health.py's StoreUnavailableMiddleware, which answers the
    one 503)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code in (404, 405) and not _is_json(response):
            return _answer(request, response)
        return response

    def process_exception(self, request, exception):
        path = request.path_info
        if isinstance(exception, STORE_ERRORS) or not (path.startswith(API_PREFIXES) or path in API_PATHS):
            return None
        return view_error(request, exception)
