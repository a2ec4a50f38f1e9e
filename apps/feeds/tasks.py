"""Scheduled work of the feed generator (the beat schedule runs these)."""

import logging

from celery import shared_task
from django.conf import settings
from django.db import connections

import skyline.celery  # noqa: F401  (the configured app, bound before the tasks: skyline loads it lazily)

from . import snapshots
from .models import Kind
from .registry import served_feeds

logger = logging.getLogger(__name__)


@shared_task
def refresh_trending_feeds():
    """Recompute every computed feed whose list is due (each has its own interval); returns their aliases.

    Meant to run every minute. Static feeds have nothing to compute, and a feed of followed accounts
    is computed per viewer on their request (nobody is served its list without a viewer).
    """
    refreshed = []
    for spec in served_feeds().values():
        if spec.kind == Kind.STATIC or (spec.rules or {}).get("followed_only"):
            continue
        try:
            if snapshots.refresh(spec):
                refreshed.append(spec.alias)
        except Exception:
            # One broken feed (a bad parameter, a query error) must not keep the others stale.
            logger.exception("could not refresh the feed %s", spec.alias)
    return refreshed


@shared_task
def prune_request_analytics():
    """Delete feed request analytics and interactions older than FEED_ANALYTICS_DAYS."""
    # Through the schema editor: on a cluster (CLICKHOUSE_CLUSTER) a mutation goes to every shard's
    # local table, as a Distributed table takes none.
    with connections["clickhouse"].schema_editor() as editor:
        for table, column in (("feed_request_analytics", "requested_at"), ("feed_interactions", "received_at")):
            editor.execute(
                f"ALTER TABLE {table} DELETE WHERE {column} < now64(6) - toIntervalDay(%s)",
                [settings.FEED_ANALYTICS_DAYS],
            )
