"""JSON 404 and 405 answers on the API paths, each in its API's error shape.

Django answers an unknown path with an HTML page and django-ninja a wrong method with a text 405;
a client of an API parses JSON. XRPC clients read `{"error", "message"}` (an unknown method is
XRPC's 501 MethodNotImplemented); the search, clean-up and label APIs read `{"error": "..."}`.
Pages outside the APIs (the admin, `/`) keep Django's own answers.
"""

from django.http import JsonResponse

# Paths under these belong to an API, so an unknown one is an API's 404.
API_PREFIXES = ("/api/", "/xrpc/", "/repo/", "/list/", "/.well-known/")
XRPC_PREFIXES = ("/xrpc/", "/.well-known/")


def _is_json(response):
    return response.get("Content-Type", "").startswith("application/json")


def _answer(request, response):
    path = request.path_info
    xrpc = path.startswith(XRPC_PREFIXES)
    if response.status_code == 405:
        # Sorted: django-ninja lists them in no fixed order.
        allowed = ", ".join(sorted(filter(None, response.get("Allow", "").replace(" ", "").split(","))))
        message = f"method {request.method} not allowed; use {allowed}"
        body = {"error": "InvalidRequest", "message": message} if xrpc else {"error": message}
        answer = JsonResponse(body, status=405)
        answer["Allow"] = allowed
        return answer
    if not path.startswith(API_PREFIXES):
        return response
    if path.startswith("/xrpc/"):
        return JsonResponse({"error": "MethodNotImplemented", "message": f"no such method: {path[6:]}"}, status=501)
    if xrpc:
        return JsonResponse({"error": "NotFound", "message": f"no such path: {path}"}, status=404)
    return JsonResponse({"error": f"not found: {path}"}, status=404)


class JsonApiErrorsMiddleware:
    """Turn the framework's own 404 and 405 pages on API paths into the API's JSON error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code in (404, 405) and not _is_json(response):
            return _answer(request, response)
        return response
