"""A feed's first page as people would see it, for the admin: author, text, time and likes of each
post, from the index (authors it cannot name: the AppView's names as cached; no calls to the network)."""

import datetime

from django.db import connections

from apps.indexer.profiles import profiles_of

from . import rules, snapshots
from .models import PIN, Kind
from .registry import FeedSpec

PREVIEW_POSTS = 30
DEFAULT_LIKE_HOURS = 72

_POSTS = """
SELECT uri, did, text, created_at FROM posts FINAL
WHERE did IN %s AND rkey IN %s AND deleted = 0
"""
_LIKES = "SELECT subject_uri, like_count FROM post_like_counts(hours = %s) WHERE subject_uri IN %s"


def first_page(feed, limit=PREVIEW_POSTS):
    """The first `limit` posts of `feed` (computed now if it has no current list): a dict per post
    with uri, did, handle, display_name, text, created_at, likes and pinned; a post the index does
    not hold has text None."""
    items, _ = snapshots.page(FeedSpec.of(feed), None, limit)
    if feed.kind == Kind.RULES:
        hours = {**rules.DEFAULTS, **feed.rules}["hours"]
    else:
        hours = feed.effective_parameters().get("hours", DEFAULT_LIKE_HOURS)
    return posts_shown(items, hours)


def posts_shown(items, hours):
    """The skeleton `items` as first_page shows them, likes counted over the last `hours`."""
    uris = [item["post"] for item in items]
    if not uris:
        return []
    parts = {uri: uri[len("at://"):].split("/") for uri in uris}
    dids = sorted({part[0] for part in parts.values()})
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(_POSTS, [tuple(dids), tuple(sorted({part[-1] for part in parts.values()}))])
        posts = {uri: (text, created_at) for uri, _, text, created_at in cursor.fetchall()}
        cursor.execute(_LIKES, [hours, tuple(uris)])
        likes = dict(cursor.fetchall())
    names = profiles_of(dids)
    shown = []
    for item in items:
        uri = item["post"]
        did = parts[uri][0]
        text, created_at = posts.get(uri, (None, None))
        handle, name = names[did]
        shown.append({
            "uri": uri, "did": did, "handle": handle, "display_name": name, "text": text,
            "created_at": created_at, "likes": likes.get(uri, 0), "pinned": item.get("reason") == PIN,
        })
    return shown


def link(uri):
    """The bsky.app address of a post's at-uri."""
    did, _, rkey = uri[len("at://"):].split("/")
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def computed(alias):
    """(when, as an aware datetime; posts) of the feed's current list, or None before its first computation."""
    found = snapshots.latest(alias)
    if found is None:
        return None
    return datetime.datetime.fromtimestamp(found[0], datetime.timezone.utc), found[1]
