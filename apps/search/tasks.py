"""Scheduled work of the search app (the beat schedule, or the in-process scheduler, runs these).

Each task is safe to run twice at once: the stats refresh takes a cache lock (Redis when
configured) and a clean-up job is leased in the relational store by the one worker that runs it.
"""

import logging
import uuid

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

import skyline.celery  # noqa: F401  (the configured app, bound before the tasks: skyline loads it lazily)

from . import cleanup, metrics, stats
from .models import CleanupJob

logger = logging.getLogger(__name__)

STATS_LOCK = "search:stats:lock"
STATS_LOCK_SECONDS = 300
DUE_JOBS_PER_TICK = 100


@shared_task
def refresh_stats():
    """Recompute the site statistics into the cache; their totals, or None if another run holds the lock."""
    token = uuid.uuid4().hex
    if not cache.add(STATS_LOCK, token, STATS_LOCK_SECONDS):
        return None
    try:
        body = stats.refresh_stats()
    finally:
        if cache.get(STATS_LOCK) == token:
            cache.delete(STATS_LOCK)
    return {key: value for key, value in body.items() if key.startswith("total_")}


@shared_task
def run_cleanup_jobs():
    """Hand each due clean-up job to a worker (in process when tasks run eagerly); their ids."""
    due = list(
        CleanupJob.objects.due(timezone.now())
        .order_by("next_run_at")
        .values_list("id", flat=True)[:DUE_JOBS_PER_TICK]
    )
    for job_id in due:
        run_cleanup_job.delay(str(job_id))
    return [str(job_id) for job_id in due]


@shared_task
def run_cleanup_job(job_id):
    """One run of one job (a no-op when it is not due or another worker has it)."""
    outcome = cleanup.run_job(job_id)
    metrics.cleanup_ran(outcome)
    return outcome
