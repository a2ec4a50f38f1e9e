"""What the admin index shows: the indexer's health, charts of the daily statistics, feed usage.

The daily figures are apps.search.stats' (aggregates kept as events arrive, so this stays cheap on
a large network), cached here for a minute. Charts are drawn on the server as inline SVG (bars
with a <title> per day), so the page needs no JavaScript and reads the same in every browser.
"""

import datetime

from django.core.cache import cache
from django.db import DatabaseError, connections
from django.utils import timezone

from apps.feeds.usage import feeds_with_users
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

    The aggregate's 'accounts' rows (apps/search/migrations/0002) are read only here: apps.search.stats
    does not show them, and its total_users is apps.search.users.count_users, not these.
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
    plot_width = CHART_WIDTH - _PLOT_LEFT - 24  # room on the right for the "today" label under the last bar
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
    # Labels count back from today's bar (under it, "today"), a week apart, each centred under its bar.
    ticks = [{"x": round(bars[index]["x"] + bars[index]["width"] / 2, 1),
              "text": "today" if index == len(ordered) - 1 else f"{ordered[index]['date']:%b %d}"}
             for index in range(len(ordered) - 1, -1, -7)]
    return {
        "key": key, "title": title, "bars": bars, "ticks": ticks, "peak": f"{peak:,}", "empty": not peak,
        "today": f"{ordered[-1][key]:,}" if ordered else "0",
        "width": CHART_WIDTH, "height": CHART_HEIGHT,
        "left": _PLOT_LEFT, "top": _PLOT_TOP, "bottom": _PLOT_BOTTOM, "right": CHART_WIDTH - 4,
        "middle": CHART_WIDTH // 2,
    }


def _duration(seconds):
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _bytes(count):
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _moment(unix_seconds):
    return datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc) if unix_seconds else None


STALE_SECONDS = 60


def _status(state, updated):
    """The state a role last reported, or why it is not to be believed."""
    if updated is None or state is None:
        return "not reporting"
    if state != "stopped" and (timezone.now() - updated).total_seconds() > STALE_SECONDS:
        return "stale"
    return state


def indexer_health():
    """The consumer's health as shown: the snapshot plus readable times, lag, state and replay progress."""
    state = health.snapshot()
    cursor = state["cursor_time_us"]
    rejects = state["rejects"]
    replay = state["replay"]
    if replay:
        total = replay["bytes_total"]
        if total:  # a file (stdin has no size)
            replay = {**replay, "read": _bytes(replay["bytes_read"]), "total": _bytes(total),
                      "percent": 100 * replay["bytes_read"] / total}
    return {
        **state,
        "status": _status(state["state"], state["updated_at"]),
        "replay": replay,
        "cursor_time": datetime.datetime.fromtimestamp(cursor / 1e6, datetime.timezone.utc) if cursor else None,
        "lag": _duration(state["lag_seconds"]),
        "since_event": None if state["seconds_since_event"] is None else _duration(state["seconds_since_event"]),
        "connection_error_time": _moment(state["connection_error_at"]),
        "rejects_total": sum(rejects.values()),
        "rejects_by_reason": sorted(rejects.items(), key=lambda item: -item[1]),
    }


def plc_storage():
    """(operations stored, bytes on disk) of plc_operations, from its active parts (rows not yet
    merged away count too, as they take the disk)."""
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(
            "SELECT sum(rows), sum(bytes_on_disk) FROM system.parts"
            " WHERE active AND database = currentDatabase() AND table = 'plc_operations'"
        )
        rows, size = cursor.fetchone()
    return int(rows or 0), int(size or 0)


def plc_health():
    """The PLC exporter as shown: its state and progress, and the disk a full copy takes.

    The estimate assumes every operation takes the bytes per operation measured on what is stored,
    and that the directory holds as many operations as the newest sequence number seen (sequence
    numbers count every operation from the first); until the export has caught up that is a lower
    bound, and a directory without sequence numbers is known only by what has been copied.
    """
    state = health.plc_snapshot()
    stored, size = plc_storage()
    directory = max(state.get("seq") or 0, stored)
    errors = state.get("errors", {})
    return {
        **state,
        "status": _status(state.get("state"), state.get("updated_at")),
        "stored": stored,
        "size": _bytes(size),
        "bytes_per_operation": size / stored if stored else None,
        "directory_operations": directory,
        "directory_known": state.get("caught_up", False),
        "full_copy": _bytes(size / stored * directory) if stored else None,
        "errors_total": sum(errors.values()),
        "errors_by_cause": sorted(errors.items(), key=lambda item: -item[1]),
        "last_error_time": _moment(state.get("last_error_at")),
        "last_page_time": _moment(state.get("last_page_at")),
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
    try:
        plc = plc_health()
    except DatabaseError as exc:
        plc = {"status": "unknown", "last_error": f"health unavailable: {exc}"}
    return {"indexer": indexer, "plc": plc, **analytics}
