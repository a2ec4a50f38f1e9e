"""Computed feed lists, kept as immutable snapshots so paging never repeats or skips a post.

Each computation of a feed is stored under a fresh id and the feed's "current" pointer moves to
it. A first page is served from the current snapshot; its cursor (`<id>:<offset>`) names the
snapshot, so every later page comes from the same list even after the feed has been recomputed.
Snapshots live in Django's cache for FEED_SNAPSHOT_SECONDS, and, being immutable, are also kept
in process memory: a page costs no query and usually not even a cache read.
"""

import re
import secrets
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.cache import cache

from .algorithms import compute

_CURSOR = re.compile(r"^([0-9a-f]{12}):(\d{1,6})$")
_IN_PROCESS = 64
# Refresh a feed this long before its interval is up, so a scheduler ticking at the interval
# does not skip every other tick.
_SLACK_SECONDS = 5


class BadCursor(ValueError):
    """A cursor this generator did not hand out."""


_recent = OrderedDict()
_recent_lock = threading.Lock()
# Striped: a fixed number of locks however many lists there are (one per viewer for feeds of
# followed accounts), so viewers cannot grow it; two lists sharing a stripe only take turns.
_compute_locks = tuple(threading.Lock() for _ in range(64))


def _current_key(alias):
    return f"feeds:current:{alias}"


def _snapshot_key(alias, snapshot_id):
    return f"feeds:snapshot:{alias}:{snapshot_id}"


def _remember(alias, snapshot_id, items):
    with _recent_lock:
        _recent[(alias, snapshot_id)] = items
        _recent.move_to_end((alias, snapshot_id))
        while len(_recent) > _IN_PROCESS:
            _recent.popitem(last=False)


def _snapshot(alias, snapshot_id):
    items = _recent.get((alias, snapshot_id))
    if items is None:
        items = cache.get(_snapshot_key(alias, snapshot_id))
        if items is not None:
            _remember(alias, snapshot_id, items)
    return items


def publish(spec, items):
    """Store `items` as the feed's new snapshot and make it current; returns the snapshot id."""
    snapshot_id = secrets.token_hex(6)
    items = tuple(items)
    cache.set(_snapshot_key(spec.alias, snapshot_id), items, settings.FEED_SNAPSHOT_SECONDS)
    # Without a scheduler the pointer expires and the next request recomputes the feed.
    cache.set(_current_key(spec.alias), (snapshot_id, time.time()), 2 * spec.refresh_seconds)
    _remember(spec.alias, snapshot_id, items)
    return snapshot_id


def refresh(spec, force=False):
    """Recompute the feed if its current snapshot is due (or `force`); True when it was recomputed."""
    pointer = cache.get(_current_key(spec.alias))
    if not force and pointer is not None and time.time() - pointer[1] < spec.refresh_seconds - _SLACK_SECONDS:
        return False
    publish(spec, compute(spec))
    return True


def latest(alias):
    """(computed at, unix seconds; number of items) of the feed's current snapshot, or None."""
    pointer = cache.get(_current_key(alias))
    items = _snapshot(alias, pointer[0]) if pointer is not None else None
    return None if items is None else (pointer[1], len(items))


def forget(alias):
    """Drop the feed's current snapshot, so its next request computes it afresh."""
    cache.delete(_current_key(alias))


def current(spec):
    """(id, items) of the feed's current snapshot, computing it now if there is none yet."""
    found = _current(spec.alias)
    if found is not None:
        return found
    # One computation per feed and process at a time; the others wait for it and reuse it.
    with _compute_locks[hash(spec.alias) % len(_compute_locks)]:
        found = _current(spec.alias)
        if found is None:
            items = tuple(compute(spec))
            found = (publish(spec, items), items)
    return found


def _current(alias):
    pointer = cache.get(_current_key(alias))
    if pointer is None:
        return None
    items = _snapshot(alias, pointer[0])
    return None if items is None else (pointer[0], items)


def page(spec, cursor, limit):
    """(items, next cursor or None) of one page of the feed, from the snapshot the cursor names.

    A cursor whose snapshot has expired ends the feed (an empty page): the viewer refreshes to
    start again from the current list, rather than seeing posts twice or missing some.
    """
    if cursor is None:
        snapshot_id, items = current(spec)
        offset = 0
    else:
        match = _CURSOR.fullmatch(cursor)
        if match is None:
            raise BadCursor("cursor was not issued by this feed generator")
        snapshot_id, offset = match.group(1), int(match.group(2))
        items = _snapshot(spec.alias, snapshot_id)
        if items is None:
            return (), None
        if offset > len(items):
            raise BadCursor("cursor points past the end of the feed")
    chunk = items[offset:offset + limit]
    end = offset + len(chunk)
    return chunk, (f"{snapshot_id}:{end}" if end < len(items) else None)
