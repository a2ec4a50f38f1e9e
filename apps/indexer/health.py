"""The firehose consumer's and the PLC exporter's health, for the admin dashboard.

Each publishes to Django's cache (shared through Redis when REDIS_URL is set, in process otherwise,
where `manage.py serve` runs them in threads). The consumer's connection (state, last connection
error, reconnects, last event, a replay's progress) is published on every change and every few
seconds while it runs; the writer publishes what it wrote after every write, under a key of its
own so neither overwrites the other. The cursor comes from where the consumer saves it, so it is
right even when the consumer is down.
"""

import logging
import sys
import time

from django.core.cache import cache
from django.utils import timezone

from apps.indexer.cursor import cursor_store

logger = logging.getLogger(__name__)

CACHE_KEY = "skyline:indexer:health"
CONNECTION_KEY = "skyline:indexer:connection"
PLC_KEY = "skyline:plc:health"

# What the consumer is doing. "disconnected": the last connection failed or ended; it waits to retry.
CONNECTING, CONNECTED, DISCONNECTED = "connecting", "connected", "disconnected"
REPLAYING, STOPPED = "replaying", "stopped"


def _cache_errors():
    """A cache being down: OSError, and Redis's errors once redis is loaded (the Redis cache loads
    it; importing it here only to name its error would cost a noticeable part of the start-up)."""
    redis = sys.modules.get("redis")
    return (redis.RedisError, OSError) if redis is not None else (OSError,)


def publish(*, last_time_us, events_per_second, rejects, last_error):
    """Record what the writer wrote: the time_us of the newest written event, its rate, rejects by reason."""
    state = {
        "last_time_us": last_time_us,
        "events_per_second": events_per_second,
        "rejects": dict(rejects),
        "last_error": last_error,
        "updated_at": timezone.now(),
    }
    cache.set(CACHE_KEY, state, timeout=None)


def publish_connection(connection):
    """Record the consumer's connection: a dict of `state`, `url`, `last_error`, `last_error_at`,
    `reconnects`, `failed_attempts` (since it was last connected), `last_event_at` and `replay`."""
    _publish(CONNECTION_KEY, connection)


def publish_plc(state):
    """Record the PLC exporter's state (see PlcExporter.health)."""
    _publish(PLC_KEY, state)


def _publish(key, state):
    """A cache that is down must not stop the role that reports to it."""
    try:
        cache.set(key, {**state, "updated_at": timezone.now()}, timeout=None)
    except _cache_errors() as exc:
        logger.warning("could not publish health to the cache: %s", exc)


def plc_snapshot():
    """The PLC exporter's last published state, or {} when it has never reported."""
    return cache.get(PLC_KEY) or {}


def snapshot():
    """The consumer's health: cursor, lag behind the network (seconds, None while unknown), rate,
    rejects, the writer's last error and the connection (state, error, reconnects, last event, replay)."""
    written = cache.get(CACHE_KEY) or {}
    connection = cache.get(CONNECTION_KEY) or {}
    cursor = cursor_store().load()
    newest = written.get("last_time_us") or cursor
    last_event_at = connection.get("last_event_at")
    reported = [moment for moment in (written.get("updated_at"), connection.get("updated_at")) if moment]
    return {
        "state": connection.get("state"),
        "url": connection.get("url"),
        "cursor_time_us": cursor,
        "lag_seconds": max(0.0, time.time() - newest / 1_000_000) if newest else None,
        "events_per_second": written.get("events_per_second", 0.0),
        "rejects": dict(written.get("rejects", {})),
        "last_error": written.get("last_error"),
        "connection_error": connection.get("last_error"),
        "connection_error_at": connection.get("last_error_at"),
        "reconnects": connection.get("reconnects", 0),
        "failed_attempts": connection.get("failed_attempts", 0),
        "seconds_since_event": max(0.0, time.time() - last_event_at) if last_event_at else None,
        "replay": connection.get("replay"),
        "updated_at": max(reported) if reported else None,
    }
