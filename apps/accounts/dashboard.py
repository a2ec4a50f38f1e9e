"""What the admin index shows: the indexer's health, charts of the daily statistics, feed usage.

The daily figures are apps.search.stats' (aggregates kept as events arrive, so this stays cheap on
a large network), cached here for a minute. Charts are drawn on the server as inline SVG (bars
with a <title> per day), so the page needs no JavaScript and reads the same in every browser.
"""

import datetime

from django.core.cache import cache
from django.db import DatabaseError, connections
from django.utils import timezone

from apps.accounts.feed_usage import feeds_with_users
from apps.indexer import health
from apps.search.stats import daily_stats

DAYS = 30
CACHE_TTL = 60
CHART_WIDTH, CHART_HEIGHT = 600, 170
_PLOT_TOP, _PLOT_BOTTOM, _PLOT_LEFT = 24, 144, 24

SERIES = [
    ("num_posts", "Posts"),
    ("num_likes", "Likes"),
    ("num_follows", "Follows"),
    ("num_blocks", "Blocks"),
    ("num_active", "Active accounts"),
]


def _active_accounts(since):
    """{date: accounts that committed anything that day} from the statistics aggregate.

    apps.search.stats keeps this (it is the base of total_users) but does not return it per day.
    """
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(
            "SELECT date, uniqCombinedMerge(14)(actors) FROM daily_stats"
            " WHERE metric_type = 'accounts' AND date >= %s GROUP BY date",
            [since],
        )
        return {date: int(count) for date, count in cursor.fetchall()}


def daily_figures(days):
    """The last `days` UTC days, newest first: apps.search.stats' figures plus num_active."""
    stats = daily_stats(days)
    active = _active_accounts(stats[-1]["date"])
    return [{**day, "num_active": active.get(day["date"], 0)} for day in stats]


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
    ticks = [{"x": round(bars[index]["x"] + bars[index]["width"] / 2, 1), "text": f"{ordered[index]['date']:%b %d}"}
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
    days = daily_figures(DAYS)
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
