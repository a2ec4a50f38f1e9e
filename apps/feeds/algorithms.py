"""What each kind of feed shows: the ranked list of skeleton items, computed from the indexed events.

Reads go through the truth views (`recent_posts`, `post_like_counts(hours=N)`: FINAL, tombstones
applied), so deleted posts and undone likes never count, and skip accounts in `hidden_accounts`
(deleted, taken down, deactivated or suspended). `compute` returns the whole list (at most
`max_posts`); paging happens over a stored snapshot of it (`snapshots.py`). `posts` and `likes` are
sorted by record key (time), so each statement reads its window, not the history.
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


def _hot(spec):
    return _HOT, spec.parameters


def _top(spec):
    return _TOP, spec.parameters


def _community(spec):
    members = label_members(spec.label_id, spec.refresh_seconds)
    if not members:
        return None
    return _COMMUNITY, {**spec.parameters, "members": tuple(sorted(members))}


def _rules(spec):
    return rules.statement(rules.validate(spec.rules or {}), spec.parameters, spec.viewer)


STATEMENTS = {Kind.HOT: _hot, Kind.TOP: _top, Kind.LABEL: _community, Kind.RULES: _rules}


def statement(spec):
    """(sql, params) that compute the feed `spec`, or None when it reads no table (static, or no members)."""
    build = STATEMENTS.get(spec.kind)
    return build(spec) if build is not None else None


def compute(spec):
    """The full skeleton of the feed `spec`, best first."""
    if spec.kind == Kind.STATIC:
        return list(spec.pinned)
    if spec.kind == Kind.RULES:
        return rules.compute(spec)
    found = statement(spec)
    if found is None:
        return []
    sql, params = found
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql, params)
        return [{"post": uri} for (uri,) in cursor.fetchall()]
