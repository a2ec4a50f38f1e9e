"""The search service's HTTP API, on the seed's paths: stats, post search, clean-up jobs, links, lists.

Errors are `{"error": "..."}` with a 4xx for anything the client can fix and 502/503 when a
service we depend on (a PDS, the directory, ClickHouse) fails; never a 500 for bad input.
Mount `api.urls` before any `/repo/{did}` route: `/repo/cleanup` must win.
"""

import json
import uuid

from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from ninja import NinjaAPI, Schema
from ninja.errors import ValidationError

from skyline import identity
from skyline.clients import client_address

from . import cleanup, lists, search, stats
from .links import LinkError, at_uri_for_link, bsky_app_url
from .models import CleanupJob

api = NinjaAPI(
    title="Skyline search API",
    version="1",
    urls_namespace="search_api",
    docs_url="/api/search/docs",
    openapi_url="/api/search/openapi.json",
)


_PLACES = {"body", "query", "path", "header", "cookie"}


def _error(message, status):
    return JsonResponse({"error": message}, status=status)


@api.exception_handler(ValidationError)
def _invalid_request(request, exc):
    # Field names and reasons only: the input (an app password, say) is never echoed.
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()) if part not in _PLACES) or 'body'}: "
        f"{error.get('msg', 'invalid')}"
        for error in exc.errors
    )
    return _error(f"error parsing request: {problems}", 400)


@api.exception_handler(LinkError)
def _link_error(request, exc):
    return _error(str(exc), exc.status)


@api.exception_handler(cleanup.CleanupError)
def _cleanup_error(request, exc):
    return _error(f"error cleaning up records: {exc}", exc.status)


@api.exception_handler(search.SearchError)
def _search_error(request, exc):
    return _error(str(exc), 400)


@api.exception_handler(DatabaseError)
def _store_down(request, exc):
    return _error("the database is unavailable, try again shortly", 503)


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
    return search.search_posts(
        q=q, author=author, lang=lang, since=since, until=until, limit=limit, cursor=cursor
    )


@api.get("/redir", url_name="redir")
def redirect(request, q: str = ""):
    """A bsky.app link as an at-URI (text), or an at-URI as a redirect to bsky.app."""
    if not q:
        raise LinkError(400, "q is required")
    if q.startswith("https://"):
        return HttpResponse(at_uri_for_link(q), content_type="text/plain; charset=utf-8")
    return HttpResponseRedirect(bsky_app_url(q))


@api.get("/list/members", url_name="list_members")
def list_members(request, uri: str = ""):
    if not uri:
        raise LinkError(400, "uri is required")
    return lists.list_members(uri)


class CleanupRequest(Schema):
    identifier: str
    app_password: str
    cleanup_types: list[str]
    delete_until_days_ago: int
    actually_delete_stuff: bool = False


@api.post("/repo/cleanup", url_name="cleanup_start")
def start_cleanup(request, body: CleanupRequest):
    return cleanup.start_cleanup(
        body.identifier,
        body.app_password,
        body.cleanup_types,
        body.delete_until_days_ago,
        body.actually_delete_stuff,
        client=client_address(request),
    )


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


@api.delete("/repo/cleanup", url_name="cleanup_cancel")
def cancel_cleanup(request, job_id: str = ""):
    """Cancel a job: only its account may, with {"identifier", "app_password"} or a Bearer access token."""
    if not job_id:
        return _error("job_id is required", 400)
    job = _job(job_id)
    if job is None:
        return _error("job not found", 404)
    try:
        proof = json.loads(request.body or b"{}")
    except ValueError:
        return _error("error parsing request: the body is not JSON", 400)
    if not isinstance(proof, dict):
        return _error("error parsing request: the body is not a JSON object", 400)
    authorization = request.headers.get("Authorization", "")
    access_token = authorization[len("Bearer ") :].strip() if authorization.startswith("Bearer ") else ""
    cleanup.cancel_cleanup(
        job,
        identifier=str(proof.get("identifier") or ""),
        app_password=str(proof.get("app_password") or ""),
        access_token=access_token,
        client=client_address(request),
    )
    return {"message": "job cancelled"}


@api.get("/repo/cleanup/stats", url_name="cleanup_stats")
def cleanup_stats(request):
    return cleanup.cleanup_stats()
