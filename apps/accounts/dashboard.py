"""What the admin index shows: the indexer's health, charts of the daily statistics, feed usage.

Charts are drawn on the server as inline SVG (bars with a <title> per day), so the page needs no
JavaScript and reads the same in every browser. The ClickHouse figures are cached for a minute:
the admin index is cheap to open even on a large network.
"""

import datetime

from django.core.cache import cache
from django.db import DatabaseError, connections
from django.utils import timezone

from apps.accounts.feed_usage import feeds_with_users
from apps.indexer import health

DAYS = 30
CACHE_TTL = 60
CHART_WIDTH, CHART_HEIGHT = 600, 150
_PLOT_TOP, _PLOT_BOTTOM, _PLOT_LEFT = 12, 128, 44

SERIES = [
    ("num_posts", "Posts"),
    ("num_likes", "Likes"),
    ("num_follows", "Follows"),
    ("num_blocks", "Blocks"),
    ("num_active", "Active accounts"),
]

# One row per record that exists now (FINAL, deletes applied), bucketed by the record's creation day.
_DAILY_SQL = """
SELECT day, countIf(kind = 1), countIf(kind = 2), countIf(kind = 3), countIf(kind = 4),
       uniqExactIf(actor, kind = 1), uniqExactIf(actor, kind = 2), uniqExactIf(actor, kind = 3),
       uniqExactIf(actor, kind = 4), uniqExact(actor)
FROM (
    SELECT 1 AS kind, did AS actor, toDate(created_at) AS day FROM posts FINAL
        WHERE deleted = 0 AND created_at >= %(since)s AND created_at < %(until)s
    UNION ALL SELECT 2, actor_did, toDate(created_at) FROM likes FINAL
        WHERE deleted = 0 AND created_at >= %(since)s AND created_at < %(until)s
    UNION ALL SELECT 3, actor_did, toDate(created_at) FROM follows FINAL
        WHERE deleted = 0 AND created_at >= %(since)s AND created_at < %(until)s
    UNION ALL SELECT 4, actor_did, toDate(created_at) FROM blocks FINAL
        WHERE deleted = 0 AND created_at >= %(since)s AND created_at < %(until)s
)
GROUP BY day ORDER BY day DESC
"""
_DAILY_KEYS = ["num_posts", "num_likes", "num_follows", "num_blocks",
               "num_posters", "num_likers", "num_followers", "num_blockers", "num_active"]


def daily_stats(days):
    """The last `days` UTC days, newest first, each {date, num_posts, ..., num_active}; quiet days are 0."""
    today = timezone.now().date()
    since = today - datetime.timedelta(days=days - 1)
    params = {"since": datetime.datetime.combine(since, datetime.time(), datetime.timezone.utc),
              "until": datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time(),
                                                 datetime.timezone.utc)}
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(_DAILY_SQL, params)
        found = {row[0]: dict(zip(_DAILY_KEYS, (int(value) for value in row[1:]))) for row in cursor.fetchall()}
    empty = dict.fromkeys(_DAILY_KEYS, 0)
    return [
        {"date": day, **found.get(day, empty)}
        for day in (today - datetime.timedelta(days=offset) for offset in range(days))
    ]


def bar_chart(days, key, title):
    """Geometry of one bar chart (oldest day on the left) for the template to draw as SVG."""
    ordered = list(reversed(days))
    peak = max((day[key] for day in ordered), default=0)
    plot_width = CHART_WIDTH - _PLOT_LEFT - 4
    step = plot_width / max(len(ordered), 1)
    plot_height = _PLOT_BOTTOM - _PLOT_TOP
    bars = []
    for index, day in enumerate(ordered):
        height = plot_height * day[key] / peak if peak else 0
        bars.append({
            "x": round(_PLOT_LEFT + index * step + step * 0.1, 1),
            "y": round(_PLOT_BOTTOM - height, 1),
            "width": round(step * 0.8, 1),
            "height": round(height, 1),
            "label": f"{day['date']:%Y-%m-%d}: {day[key]:,}",
        })
    ticks = [{"x": bars[index]["x"], "text": f"{ordered[index]['date']:%b %d}"}
             for index in range(0, len(ordered), 7)] if bars else []
    return {
        "key": key, "title": title, "bars": bars, "ticks": ticks, "peak": f"{peak:,}",
        "today": f"{ordered[-1][key]:,}" if ordered else "0",
        "width": CHART_WIDTH, "height": CHART_HEIGHT,
        "left": _PLOT_LEFT, "top": _PLOT_TOP, "bottom": _PLOT_BOTTOM, "right": CHART_WIDTH - 4,
    }


def _duration(seconds):
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def indexer_health():
    """The consumer's health as shown: the snapshot plus readable cursor time, lag and state."""
    state = health.snapshot()
    cursor = state["cursor_time_us"]
    updated = state["updated_at"]
    if updated is None:
        status = "not reporting"
    elif (timezone.now() - updated).total_seconds() > 60:
        status = "stale"
    else:
        status = "running"
    rejects = state["rejects"]
    return {
        **state,
        "status": status,
        "cursor_time": datetime.datetime.fromtimestamp(cursor / 1e6, datetime.timezone.utc) if cursor else None,
        "lag": _duration(state["lag_seconds"]),
        "rejects_total": sum(rejects.values()),
        "rejects_by_reason": sorted(rejects.items(), key=lambda item: -item[1]),
    }


def _analytics():
    days = daily_stats(DAYS)
    return {
        "days": days,
        "recent_days": days[:7],
        "charts": [bar_chart(days, key, title) for key, title in SERIES],
        "feeds": feeds_with_users(),
    }


def summary():
    """Everything the admin index shows; a store that is down is reported on the page, not raised."""
    try:
        analytics = cache.get("dashboard:analytics")
        if analytics is None:
            analytics = _analytics()
            cache.set("dashboard:analytics", analytics, CACHE_TTL)
    except DatabaseError as exc:
        analytics = {"error": f"statistics unavailable: {exc}"}
    try:
        indexer = indexer_health()
    except DatabaseError as exc:
        indexer = {"status": "unknown", "last_error": f"health unavailable: {exc}"}
    return {"indexer": indexer, **analytics}
