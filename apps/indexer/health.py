"""The firehose consumer's health, for the admin dashboard.

The consumer publishes its state to Django's cache after every write (shared through Redis when
REDIS_URL is set, in process otherwise, where `manage.py serve` runs the consumer in a thread);
the cursor comes from where the consumer saves it, so it is right even when the consumer is down.
"""

import time

from django.core.cache import cache
from django.utils import timezone

from apps.indexer.cursor import cursor_store

CACHE_KEY = "skyline:indexer:health"


def publish(*, last_time_us, events_per_second, rejects, last_error):
    """Record the consumer's state: the time_us of the newest written event, its rate, rejects by reason."""
    state = {
        "last_time_us": last_time_us,
        "events_per_second": events_per_second,
        "rejects": dict(rejects),
        "last_error": last_error,
        "updated_at": timezone.now(),
    }
    cache.set(CACHE_KEY, state, timeout=None)


def snapshot():
    """The consumer's health: cursor, lag behind the network (seconds), rate, rejects, last error."""
    state = cache.get(CACHE_KEY) or {}
    cursor = cursor_store().load()
    newest = state.get("last_time_us") or cursor
    return {
        "cursor_time_us": cursor,
        "lag_seconds": max(0.0, time.time() - newest / 1_000_000) if newest else None,
        "events_per_second": state.get("events_per_second", 0.0),
        "rejects": dict(state.get("rejects", {})),
        "last_error": state.get("last_error"),
        "updated_at": state.get("updated_at"),
    }
