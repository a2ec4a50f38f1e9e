"""Repo clean-up: a user's old posts, reposts and likes deleted from their PDS, a little at a time.

`start_cleanup` signs in with the user's app password, counts what would go (a dry run) or creates
a job holding the session's refresh token. `run_job` works a job off within the seed's limits:
applyWrites calls of CLEANUP_DELETES_PER_CALL deletes at CLEANUP_CALLS_PER_SECOND, at most
CLEANUP_DELETES_PER_RUN a run and CLEANUP_DELETES_PER_DAY a UTC day (the full date, not the
day-of-month the seed compared). The rotated refresh token and every call's progress are saved
at once, so an error part-way loses neither.

What counts as media: images, a video, or a quote with images or a video. (The seed counted only
images, and only images when the job was created, so dry runs and jobs could disagree.)
"""

import contextlib
import datetime
import logging
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from skyline.atproto import identity, outbound
from skyline.atproto.ratelimit import FailureLimit, RateLimiter
from skyline.atproto.repos import RepoError, fetch_repo
from skyline.atproto.syntax import has_media
from skyline.atproto.xrpc import PdsError, XrpcClient
from skyline.errors import Kind, Refused

from . import metrics
from .models import CleanupJob

logger = logging.getLogger(__name__)

CLEANUP_TYPES = ("post", "post_with_media", "repost", "like")
LEASE_SECONDS = 1800
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EXPIRED = ("ExpiredToken", "InvalidToken")
_ACCOUNT_GONE = (
    "Could not find user info",
    "AccountNotFound",
    "AccountDeactivated",
    "AccountTakedown",
    "RepoNotFound",
)


# Wrong passwords: a few per account, a few more per client, in a quarter of an hour.
SIGN_IN_FAILURES_PER_IDENTIFIER = FailureLimit("cleanup:signin:identifier", 5, 900)
SIGN_IN_FAILURES_PER_CLIENT = FailureLimit("cleanup:signin:client", 20, 900)


class CleanupError(Refused):
    """A clean-up request that cannot go on: `kind` says why (skyline/errors.py)."""


def _created_at(record):
    try:
        created = datetime.datetime.fromisoformat(str(record.get("createdAt", "")))
    except ValueError:
        return None
    return created if created.tzinfo else created.replace(tzinfo=datetime.timezone.utc)


def selected_records(repo, cleanup_types, older_than):
    """(collection, rkey) of the posts, reposts and likes of `repo` to delete, in repo order.

    A record goes when its kind is among `cleanup_types` and its createdAt is before
    `older_than`; records without a readable createdAt stay.
    """
    types = set(cleanup_types)
    selected = []
    for collection, rkey, record in repo.records("app.bsky.feed."):
        if collection == "app.bsky.feed.post":
            kind = "post_with_media" if has_media(record.get("embed")) else "post"
        elif collection == "app.bsky.feed.repost":
            kind = "repost"
        elif collection == "app.bsky.feed.like":
            kind = "like"
        else:
            continue
        created = _created_at(record)
        if kind in types and created is not None and created < older_than:
            selected.append((collection, rkey))
    return selected


def login_host(pds):
    """Where an account signs in: Bluesky's entryway for its own PDSs, the account's PDS otherwise."""
    host = urlsplit(pds).hostname or ""
    return settings.ENTRYWAY_URL if host.endswith(".host.bsky.network") else pds


def _login_client(host):
    """An XrpcClient for a sign-in host: the entryway is the operator's, any other host a stranger's."""
    return XrpcClient(host, trusted=host == settings.ENTRYWAY_URL)


def _account_host(did):
    try:
        return login_host(identity.pds_endpoint(did))
    except identity.IdentityError as exc:
        raise CleanupError(Kind.UPSTREAM, f"could not find the PDS of {did}: {exc}") from None


def _sign_in(identifier, app_password, client):
    """A new session for a handle, DID or email and an app password, whose DID is the account the
    identifier names and signs in where that DID's document says: a PDS cannot answer for another
    account. Failures are counted per identifier and per client, and too many are refused (429)."""
    identifier = identifier.strip().lstrip("@")
    limits = ((SIGN_IN_FAILURES_PER_IDENTIFIER, identifier.lower()), (SIGN_IN_FAILURES_PER_CLIENT, client))
    if any(limit.exceeded(key) for limit, key in limits):
        raise CleanupError(Kind.TOO_MANY, "too many failed sign-ins; try again later")
    did = None
    if identity.is_did(identifier) or identity.is_handle(identifier):
        try:
            did = identifier if identity.is_did(identifier) else identity.resolve_handle(identifier)
        except identity.IdentityError as exc:
            raise CleanupError(Kind.INVALID, f"could not resolve {identifier}: {exc}") from None
        host = _account_host(did)
    elif _EMAIL.fullmatch(identifier):
        host = settings.ENTRYWAY_URL
    else:
        raise CleanupError(Kind.INVALID, "failed to parse identifier as at-identifier or email address")
    try:
        with _login_client(host) as pds:
            session = pds.create_session(identifier, app_password)
    except PdsError as exc:
        if exc.status in (400, 401):
            for limit, key in limits:
                limit.count(key)
            raise CleanupError(
                Kind.UNAUTHENTICATED, "could not sign in: the identifier or app password was not accepted"
            ) from None
        raise CleanupError(Kind.UPSTREAM, f"could not sign in: {exc}") from None
    if (did is not None and session["did"] != did) or _account_host(session["did"]) != host:
        raise CleanupError(
            Kind.UPSTREAM, "could not sign in: the PDS answered for an account it does not host"
        )
    return session


def _selected(did, cleanup_types, older_than):
    try:
        return selected_records(fetch_repo(did), cleanup_types, older_than)
    except identity.IdentityError as exc:
        raise CleanupError(Kind.UPSTREAM, f"could not find the PDS of {did}: {exc}") from None
    except (PdsError, RepoError) as exc:
        raise CleanupError(Kind.UPSTREAM, f"could not read the repo of {did}: {exc}") from None


def _running_job_answer(job):
    return {
        "num_enqueued": 0,
        "dry_run": False,
        "message": "Found existing active job for your account, you can only have one job running at a time.",
        "job_id": str(job.id),
    }


@contextlib.contextmanager
def _turn():
    """A turn to call out (outbound.calling_out), or CleanupError (BUSY) when none is free."""
    try:
        with outbound.calling_out():
            yield
    except outbound.Busy as exc:
        raise CleanupError(Kind.BUSY, str(exc)) from None


def start_cleanup(
    identifier, app_password, cleanup_types, delete_until_days_ago, actually_delete_stuff, client=""
):
    """A dry run's count, or a new job (the seed's POST /repo/cleanup answers). `client`: the
    caller's address, for counting failed sign-ins."""
    unknown = sorted(set(cleanup_types) - set(CLEANUP_TYPES))
    if unknown or not cleanup_types:
        raise CleanupError(Kind.INVALID, f"cleanup_types must be some of {', '.join(CLEANUP_TYPES)}")
    if not 0 <= delete_until_days_ago <= 36500:
        raise CleanupError(Kind.INVALID, "delete_until_days_ago must be between 0 and 36500")
    older_than = timezone.now() - datetime.timedelta(days=delete_until_days_ago)
    with _turn():
        session = _sign_in(identifier, app_password, client)
        did = session["did"]
        running = CleanupJob.objects.running().filter(repo=did).first()
        if running:
            return _running_job_answer(running)
        selected = _selected(did, cleanup_types, older_than)
    if not actually_delete_stuff:
        return {"num_enqueued": len(selected), "dry_run": True, "message": "Records will not be deleted"}
    job = CleanupJob(
        repo=did,
        cleanup_types=sorted(set(cleanup_types)),
        delete_older_than=older_than,
        est_num_remaining=len(selected),
    )
    job.refresh_token = session["refreshJwt"]
    try:
        with transaction.atomic():
            job.save(force_insert=True)
    except IntegrityError:  # a job for this account was created meanwhile
        return _running_job_answer(CleanupJob.objects.running().get(repo=did))
    url = f"{settings.SERVICE_ENDPOINT}/repo/cleanup?job_id={job.id}"
    logger.info("clean-up job %s created for %s: %d records", job.id, did, len(selected))
    return {
        "num_enqueued": len(selected),
        "dry_run": False,
        "message": f"{len(selected)} records enqueued for deletion in job at: {url}",
        "job_id": str(job.id),
    }


def cancel_cleanup(job, identifier="", app_password="", access_token="", client=""):
    """Cancel `job` for its owner, proven by an app password or an access token of the account."""
    with _turn():
        if access_token:
            did = _token_did(job.repo, access_token)
        elif identifier and app_password:
            did = _sign_in(identifier, app_password, client)["did"]
        else:
            raise CleanupError(
                Kind.UNAUTHENTICATED,
                "cancelling a job needs the account's identifier and app password, or an access token",
            )
    if did != job.repo:
        raise CleanupError(Kind.FORBIDDEN, "only the account that created the job can cancel it")
    if job.state == CleanupJob.State.COMPLETED:
        raise CleanupError(Kind.INVALID, "job already completed")
    if job.state == CleanupJob.State.ERRORED:
        raise CleanupError(Kind.INVALID, f"job already ended ({job.job_state})")
    job.cancel()
    logger.info("clean-up job %s cancelled by its owner", job.id)


def _token_did(did, access_token):
    """The DID an access token belongs to, asked where `did` signs in (so only its own PDS answers)."""
    try:
        with _login_client(_account_host(did)) as pds:
            return pds.get_session(access_token).get("did")
    except PdsError as exc:
        if exc.status in (400, 401):
            raise CleanupError(Kind.UNAUTHENTICATED, "the access token was not accepted") from None
        raise CleanupError(Kind.UPSTREAM, f"could not check the access token: {exc}") from None


def jobs_of(did):
    """The account's latest 100 jobs, without their ids: an id is shown only to the job's owner,
    who got it when the job was created."""
    jobs = CleanupJob.objects.filter(repo=did).order_by("-updated_at")[:100]
    return [{key: value for key, value in job.status().items() if key != "job_id"} for job in jobs]


def cleanup_stats():
    totals = CleanupJob.objects.aggregate(
        total_num_deleted=Sum("num_deleted"), num_jobs=Count("id"), num_repos=Count("repo", distinct=True)
    )
    return {key: value or 0 for key, value in totals.items()}


def _seconds_to_next_utc_day(now):
    tomorrow = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def run_job(job_id):
    """One run of a job, if it is due and no other worker has it; a word on what happened."""
    job = CleanupJob.objects.filter(pk=job_id).first()
    if job is None or not job.claim(LEASE_SECONDS):
        return "not due"
    try:
        return _run(job)
    except Exception:
        logger.exception("clean-up job %s failed; it will be tried again", job.id)
        job.schedule(settings.CLEANUP_RETRY_INTERVAL)
        return "failed"


def _run(job):
    now = datetime.datetime.now(datetime.timezone.utc)
    left_today = job.deletes_left_today(now, settings.CLEANUP_DELETES_PER_DAY)
    if left_today == 0:
        job.schedule(max(_seconds_to_next_utc_day(now), settings.CLEANUP_RUN_INTERVAL))
        return "daily limit reached"
    try:
        pds = identity.pds_endpoint(job.repo)
    except identity.IdentityError as exc:
        logger.warning("clean-up job %s: %s", job.id, exc)
        job.schedule(settings.CLEANUP_RETRY_INTERVAL)
        return "identity unavailable"

    try:
        with _login_client(login_host(pds)) as auth:
            session = auth.refresh_session(job.refresh_token)
    except PdsError as exc:
        return _session_failed(job, exc)
    if not job.save_token(session["refreshJwt"]):
        return "stopped"

    try:
        selected = selected_records(fetch_repo(job.repo), job.cleanup_types, job.delete_older_than)
        client = XrpcClient(pds)
    except (identity.IdentityError, PdsError, RepoError) as exc:
        logger.warning("clean-up job %s: could not read the repo: %s", job.id, exc)
        job.schedule(settings.CLEANUP_RETRY_INTERVAL)
        return "repo unavailable"
    with client:
        return _delete(
            job, client, session["accessJwt"], selected, min(settings.CLEANUP_DELETES_PER_RUN, left_today)
        )


def _session_failed(job, exc):
    if exc.says(*_EXPIRED):
        job.fail(CleanupJob.EXPIRED_TOKEN)
        return "errored: expired token"
    if exc.says(*_ACCOUNT_GONE):
        job.fail(CleanupJob.ACCOUNT_GONE)
        return "errored: account gone"
    logger.warning("clean-up job %s: could not refresh the session: %s", job.id, exc)
    job.schedule(settings.CLEANUP_RETRY_INTERVAL)
    return "session unavailable"


def _delete(job, client, access_token, selected, budget):
    limiter = RateLimiter(settings.CLEANUP_CALLS_PER_SECOND)
    per_call = settings.CLEANUP_DELETES_PER_CALL
    batch = selected[:budget]
    deleted = 0
    for start in range(0, len(batch), per_call):
        chunk = batch[start : start + per_call]
        writes = [
            {"$type": "com.atproto.repo.applyWrites#delete", "collection": collection, "rkey": rkey}
            for collection, rkey in chunk
        ]
        limiter.wait()
        try:
            client.apply_writes(access_token, job.repo, writes)
        except PdsError as exc:
            # Everything before this call is saved; the next run reads the repo afresh.
            logger.warning("clean-up job %s stopped after %d deletes: %s", job.id, deleted, exc)
            job.schedule(settings.CLEANUP_RETRY_INTERVAL, remaining=len(selected) - deleted)
            return "interrupted"
        deleted += len(chunk)
        metrics.CLEANUP_DELETED.inc(len(chunk))
        if not job.record_deletes(len(chunk), len(selected) - deleted):
            return "stopped"
    remaining = len(selected) - deleted
    job.schedule(settings.CLEANUP_RUN_INTERVAL, remaining=remaining)
    return "completed" if remaining <= 0 else f"deleted {deleted}"
