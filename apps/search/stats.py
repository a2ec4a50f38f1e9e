"""Site statistics from the `daily_stats` aggregate, cached for GET /api/stats (and the seed's /stats).

What the numbers mean, per UTC day:
- num_posts, num_likes, num_follows, num_blocks: records created that day that still exist, as
  far as the firehose told us: a record's day is the time in its TID record key (createdAt when
  the key is not a TID), and a later delete (a deleted post, an undone like, an unfollow or unblock)
  takes it off the day it was counted on. An edited post (rare: the app cannot edit posts) and an
  event the consumer re-delivered after a crash are counted again. Deletes of records older than
  the index cannot take off what was never counted: a day never goes below 0, and a day with
  nothing but such deletes is not shown.
- num_posters, num_likers, num_followers, num_blockers: distinct accounts that created such a
  record that day, deletes or not. Exact for small numbers, within about 1% at the network's scale
  (ClickHouse uniqCombined, precision 14).
- total_posts, total_likes, total_follows: the sums of the daily counts shown (the seed's totals).
- total_users: accounts known from the firehose and the PLC directory that still exist (exact;
  apps.search.users.count_users).

Days imported from bsky-experiments (`daily_stats_imported`, `manage.py import_seed`) show what its
/stats showed. On a day counted by both systems (the day of the switch) the counts add up and the
distinct accounts are the larger of the two (their sketches cannot be merged).
"""

import datetime

from django.core.cache import cache
from django.db import connections

from apps.search.users import count_users
from skyline.atproto.syntax import utc_text

CACHE_KEY = "search:stats"
# Kept well past the refresh interval: a stalled refresher shows older numbers, not none.
CACHE_SECONDS = 3600
FIRST_DAY = datetime.date(2023, 3, 1)
METRICS = {
    "posts": ("num_posts", "num_posters"),
    "likes": ("num_likes", "num_likers"),
    "follows": ("num_follows", "num_followers"),
    "blocks": ("num_blocks", "num_blockers"),
}
EMPTY_DAY = {name: 0 for names in METRICS.values() for name in names}


def _today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def _daily_rows(since, until):
    """{date: {num_posts: .., ...}} for the days between `since` and `until` that have any data."""
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(
            "SELECT date, metric_type, sum(count), max(actors) FROM ("
            " SELECT date, metric_type, sum(count) AS count, uniqCombinedMerge(14)(actors) AS actors FROM daily_stats"
            " WHERE date BETWEEN %s AND %s AND metric_type IN %s GROUP BY date, metric_type"
            " UNION ALL SELECT date, metric_type, count, actors FROM daily_stats_imported FINAL"
            " WHERE date BETWEEN %s AND %s AND metric_type IN %s"
            ") GROUP BY date, metric_type",
            [since, until, tuple(METRICS)] * 2,
        )
        rows = cursor.fetchall()
    days = {}
    for date, metric, count, actors in rows:
        count_name, actors_name = METRICS[metric]
        day = days.setdefault(date, dict(EMPTY_DAY))
        # A delete of a record created before indexing began comes off a day that never counted it.
        day[count_name] = max(0, int(count))
        day[actors_name] = int(actors)
    return {date: day for date, day in days.items() if any(day.values())}


def daily_stats(days):
    """The last `days` UTC days, today first: one dict per day (date is a datetime.date), zeros included."""
    today = _today()
    first = today - datetime.timedelta(days=days - 1)
    found = _daily_rows(first, today)
    dates = [today - datetime.timedelta(days=offset) for offset in range(days)]
    return [{"date": date, **found.get(date, EMPTY_DAY)} for date in dates]


def compute_stats():
    """The seed's /stats body, computed now."""
    found = _daily_rows(FIRST_DAY, _today() + datetime.timedelta(days=1))
    daily = [{"date": date.isoformat(), **found[date]} for date in sorted(found, reverse=True)]
    return {
        "total_users": count_users(),
        "total_posts": sum(day["num_posts"] for day in daily),
        "total_follows": sum(day["num_follows"] for day in daily),
        "total_likes": sum(day["num_likes"] for day in daily),
        "updated_at": utc_text(datetime.datetime.now(datetime.timezone.utc)),
        "daily_data": daily,
    }


def refresh_stats():
    """Compute the stats and cache them for every web process; the new body."""
    stats = compute_stats()
    cache.set(CACHE_KEY, stats, CACHE_SECONDS)
    return stats


def cached_stats():
    """The cached stats, or freshly computed ones before the first refresh."""
    stats = cache.get(CACHE_KEY)
    return stats if stats is not None else refresh_stats()
