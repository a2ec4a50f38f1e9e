"""GET /repo/{did}: an account's records as JSON (the seed's repo export).

Mounted after the search API, whose /repo/cleanup routes must win over /repo/{did}.
Errors are {"error": "..."} (skyline/api_errors.py): 400 for a bad DID, 404 for an account or repo
that cannot be found, 429 while the repo checkouts are busy, 503 while every turn to call out is
taken, 502 when the account's PDS fails or its repo cannot be read.
"""

from django.http import StreamingHttpResponse
from ninja import NinjaAPI

from skyline.api_errors import api_error, refused

from .repo_export import RepoExportError, export_repo

api = NinjaAPI(
    title="Skyline repo export",
    version="1",
    urls_namespace="repo_export_api",
    docs_url=None,
    openapi_url=None,
)


@api.exception_handler(RepoExportError)
def _export_error(request, exc):
    return api_error(request, refused(exc))


@api.get("/repo/{did}", url_name="repo_export")
def repo_export(request, did: str):
    """The account's posts, likes, reposts, follows and blocks, and its profile (null when it has none)."""
    return StreamingHttpResponse(export_repo(did), content_type="application/json; charset=utf-8")
