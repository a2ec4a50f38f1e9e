"""What each kind of feed shows: the ranked list of skeleton items, computed from the indexed events.

Reads go through the truth views (`recent_posts`, `post_like_counts(hours=N)`: FINAL, tombstones
applied), so deleted posts and undone likes never count, and skip accounts in `hidden_accounts`
(deleted, taken down, deactivated or suspended). Each function returns the whole list (at most
`max_posts`); paging happens over a stored snapshot of it (`snapshots.py`).
"""

from django.db import connections

from . import rules
from .models import Kind
from .registry import label_members

_NOT_HIDDEN = "p.did NOT IN (SELECT did FROM hidden_accounts)"

# Hours are whole hours since creation; the score is the seed's (likes - 1) / (hours + 2) ^ gravity.
_HOT = f"""
SELECT p.uri
FROM recent_posts AS p
INNER JOIN post_like_counts(hours = %(hours)s) AS l ON l.subject_uri = p.uri
WHERE p.created_at > now64(6) - toIntervalHour(%(hours)s)
  AND p.created_at <= now64(6) - toIntervalMinute(%(min_age_minutes)s)
  AND p.parent_uri = '' AND p.root_uri = ''
  AND l.like_count >= %(min_likes)s
  AND {_NOT_HIDDEN}
ORDER BY (l.like_count - 1) / pow(intDiv(dateDiff('second', p.created_at, now64(6)), 3600) + 2, %(gravity)s) DESC,
         p.created_at DESC, p.uri
LIMIT %(max_posts)s
"""

_TOP = f"""
SELECT p.uri
FROM recent_posts AS p
INNER JOIN post_like_counts(hours = %(hours)s) AS l ON l.subject_uri = p.uri
WHERE p.created_at > now64(6) - toIntervalHour(%(hours)s)
  AND p.created_at <= now64(6)
  AND l.like_count >= %(min_likes)s
  AND {_NOT_HIDDEN}
ORDER BY l.like_count DESC, p.created_at DESC, p.uri
LIMIT %(max_posts)s
"""

# Newest first; a post dated in the future (clients set createdAt) waits until its time comes.
_COMMUNITY = f"""
SELECT p.uri
FROM recent_posts AS p
WHERE p.did IN %(members)s
  AND p.created_at > now64(6) - toIntervalHour(%(hours)s)
  AND p.created_at <= now64(6)
  AND (%(include_replies)s OR (p.parent_uri = '' AND p.root_uri = ''))
  AND {_NOT_HIDDEN}
ORDER BY p.created_at DESC, p.uri DESC
LIMIT %(max_posts)s
"""


def _uris(sql, params):
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql, params)
        return [{"post": uri} for (uri,) in cursor.fetchall()]


def hot(spec):
    return _uris(_HOT, spec.parameters)


def top(spec):
    return _uris(_TOP, spec.parameters)


def community(spec):
    members = label_members(spec.label_id, spec.refresh_seconds)
    if not members:
        return []
    return _uris(_COMMUNITY, {**spec.parameters, "members": tuple(sorted(members))})


def pinned(spec):
    return list(spec.pinned)


ALGORITHMS = {Kind.HOT: hot, Kind.TOP: top, Kind.LABEL: community, Kind.STATIC: pinned, Kind.RULES: rules.compute}


def compute(spec):
    """The full skeleton of the feed `spec`, best first."""
    return ALGORITHMS[spec.kind](spec)
