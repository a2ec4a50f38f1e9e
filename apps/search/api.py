"""The search service's HTTP API, on the seed's paths: stats, post search, clean-up jobs, links, lists.

Errors are `{"error": "..."}` (skyline/api_errors.py) with a 4xx for anything the client can fix,
502 when a service we depend on (a PDS, the directory) fails, 503 when a store is down (the one 503
of skyline/health.py) or no turn to call out is free; never a 500 for bad input, and a logged 500
for a fault of our own.
Mount `api.urls` before any `/repo/{did}` route: `/repo/cleanup` must win.
"""

import uuid

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, HttpResponseRedirect
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from pydantic import BaseModel, Field

from skyline.api_docs import ServedSwagger
from skyline.api_errors import ApiError, api_answer, api_error, refused, validation_message
from skyline.atproto import identity
from skyline.bodies import JsonParser, http_error_message
from skyline.clients import client_address

from . import cleanup, lists, metrics, search, stats
from .links import LinkError, at_uri_for_link, bsky_app_url
from .models import CleanupJob

api = NinjaAPI(
    title="Skyline search API",
    version="1",
    urls_namespace="search_api",
    docs_url="/api/search/docs",
    docs=ServedSwagger(),
    openapi_url="/api/search/openapi.json",
    parser=JsonParser(),
)

api.add_exception_handler(ApiError, api_error)


def _error(message, status):
    return api_answer(status, message)


@api.exception_handler(ValidationError)
def _invalid_request(request, exc):
    return _error(f"error parsing request: {validation_message(exc.errors)}", 400)


@api.exception_handler(HttpError)
def _unreadable_request(request, exc):
    # What ninja itself refuses, such as a body that is not JSON.
    return _error(f"error parsing request: {http_error_message(exc)}", exc.status_code)


@api.exception_handler(RequestDataTooBig)
def _body_too_large(request, exc):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return _error(f"error parsing request: the body is larger than {limit} bytes", 413)


@api.exception_handler(LinkError)
def _link_error(request, exc):
    return api_error(request, refused(exc))


@api.exception_handler(cleanup.CleanupError)
def _cleanup_error(request, exc):
    return api_error(request, refused(exc, prefix="error cleaning up records: "))


@api.exception_handler(search.SearchError)
def _search_error(request, exc):
    return _error(str(exc), 400)


@api.get("/api/stats", url_name="stats")
def site_stats(request):
    """Site statistics, refreshed every minute (computed on the spot before the first refresh)."""
    return stats.cached_stats()


@api.get("/stats", url_name="seed_stats")
def seed_stats(request):
    """The same statistics on the seed's path."""
    return stats.cached_stats()


@api.get("/api/search/posts", url_name="search_posts")
def search_posts(
    request,
    q: str = "",
    author: str = "",
    lang: str = "",
    since: str = "",
    until: str = "",
    limit: int = 25,
    cursor: str = "",
):
    """Posts with all the words and "quoted phrases" of q, newest first; pass `cursor` back for more."""
    with metrics.timed_search(refused=search.SearchError) as page:
        page.update(search.search_posts(
            q=q, author=author, lang=lang, since=since, until=until, limit=limit, cursor=cursor
        ))
    return page


@api.get("/redir", url_name="redir")
def redirect(request, q: str = ""):
    """A bsky.app link as an at-URI (text), or an at-URI as a redirect to bsky.app."""
    if not q:
        raise ApiError(400, "q is required")
    if q.startswith("https://"):
        return HttpResponse(at_uri_for_link(q), content_type="text/plain; charset=utf-8")
    return HttpResponseRedirect(bsky_app_url(q))


@api.get("/list/members", url_name="list_members")
def list_members(request, uri: str = ""):
    if not uri:
        raise ApiError(400, "uri is required")
    return lists.list_members(uri)


# Bodies are plain pydantic models (ninja's Schema reads attributes of any object, a list too).
# An identifier is a handle, an email or a DID (at most 2048 characters, the longest of the three).
IDENTIFIER_MAX = 2048
PASSWORD_MAX = 1024


class CleanupRequest(BaseModel):
    identifier: str = Field(max_length=IDENTIFIER_MAX)
    app_password: str = Field(max_length=PASSWORD_MAX)
    cleanup_types: list[str]
    delete_until_days_ago: int
    actually_delete_stuff: bool = False


@api.post("/repo/cleanup", url_name="cleanup_start")
def start_cleanup(request, body: CleanupRequest):
    answer = cleanup.start_cleanup(
        body.identifier,
        body.app_password,
        body.cleanup_types,
        body.delete_until_days_ago,
        body.actually_delete_stuff,
        client=client_address(request),
    )
    metrics.cleanup_requested(answer)
    return answer


def _job(job_id):
    try:
        return CleanupJob.objects.get(pk=uuid.UUID(job_id))
    except (ValueError, CleanupJob.DoesNotExist):
        return None


@api.get("/repo/cleanup", url_name="cleanup_status")
def cleanup_status(request, job_id: str = "", did: str = ""):
    """One job by id, or the account's latest 100 jobs."""
    if job_id:
        job = _job(job_id)
        return job.status() if job else _error("job not found", 404)
    if did:
        if not identity.is_did(did):
            return _error("did is not a valid DID", 400)
        jobs = cleanup.jobs_of(did)
        return jobs if jobs else _error("no jobs found for the provided DID", 404)
    return _error("must specify either job_id or did in query params", 400)


class CancelRequest(BaseModel):
    identifier: str = Field("", max_length=IDENTIFIER_MAX)
    app_password: str = Field("", max_length=PASSWORD_MAX)


@api.delete("/repo/cleanup", url_name="cleanup_cancel")
def cancel_cleanup(request, job_id: str = "", body: CancelRequest | None = None):
    """Cancel a job: only its account may, with {"identifier", "app_password"} or a Bearer access token."""
    if not job_id:
        return _error("job_id is required", 400)
    job = _job(job_id)
    if job is None:
        return _error("job not found", 404)
    body = body or CancelRequest()
    authorization = request.headers.get("Authorization", "")
    access_token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else ""
    cleanup.cancel_cleanup(
        job,
        identifier=body.identifier,
        app_password=body.app_password,
        access_token=access_token,
        client=client_address(request),
    )
    return {"message": "job cancelled"}


@api.get("/repo/cleanup/stats", url_name="cleanup_stats")
def cleanup_stats(request):
    return cleanup.cleanup_stats()
