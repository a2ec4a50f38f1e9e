"""Prometheus metrics of post search and repo clean-up jobs.

HTTP requests per route are counted by `skyline.metrics` already; these say what the work did:
how searches ended and how long they took, how many posts a page held, and how clean-up runs ended
and how many records they deleted. Outcomes come from fixed sets.
"""

import time
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

SEARCHES = Counter("skyline_search_queries_total", "Post searches, by outcome (ok, invalid, error).", ["outcome"])
SEARCH_SECONDS = Histogram(
    "skyline_search_duration_seconds", "Time to answer a post search.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SEARCH_RESULTS = Histogram(
    "skyline_search_results", "Posts in a search's page.", buckets=(0, 1, 5, 10, 25, 50, 100),
)
CLEANUP_REQUESTS = Counter(
    "skyline_cleanup_requests_total",
    "POST /repo/cleanup answers that were not errors, by result (dry_run, job, already_running).", ["result"],
)
CLEANUP_RUNS = Counter("skyline_cleanup_runs_total", "Runs of clean-up jobs, by outcome.", ["outcome"])
CLEANUP_DELETED = Counter("skyline_cleanup_records_deleted_total", "Records clean-up jobs deleted from PDSes.")

# What `cleanup.run_job` says, reduced to a fixed set ("deleted 120" is a run that has more to do).
RUN_OUTCOMES = frozenset({
    "not due", "failed", "daily limit reached", "identity unavailable", "stopped", "repo unavailable",
    "errored: expired token", "errored: account gone", "session unavailable", "interrupted", "completed",
})


@contextmanager
def timed_search(refused):
    """Time the search in the block and count how it ended; a `refused` exception is the client's fault.

    The block sets `page["posts"]` to the posts it found.
    """
    started = time.perf_counter()
    page = {}
    try:
        yield page
    except refused:
        SEARCHES.labels("invalid").inc()
        raise
    except Exception:
        SEARCHES.labels("error").inc()
        raise
    finally:
        SEARCH_SECONDS.observe(time.perf_counter() - started)
    SEARCHES.labels("ok").inc()
    SEARCH_RESULTS.observe(len(page.get("posts", ())))


def cleanup_requested(answer):
    """Count one answer of POST /repo/cleanup (the body returned to the client)."""
    if answer["dry_run"]:
        result = "dry_run"
    elif answer["num_enqueued"] == 0 and answer["message"].startswith("Found existing active job"):
        result = "already_running"
    else:
        result = "job"
    CLEANUP_REQUESTS.labels(result).inc()


def cleanup_ran(outcome):
    if outcome.startswith("deleted "):
        outcome = "partial"
    CLEANUP_RUNS.labels(outcome if outcome in RUN_OUTCOMES or outcome == "partial" else "other").inc()
