"""Each feed with its request counts and distinct viewers, from the feed generator's request analytics."""

from django.db import connections

from apps.feeds.models import Feed, FeedRequest


def _usage_by_alias():
    """{alias: (requests in 24 h, viewers in 24 h, requests, viewers)} over the stored analytics.

    Anonymous requests count as requests but not as viewers (the seed counted '' as one user).
    """
    sql = (
        "SELECT feed_name, countIf(requested_at > now() - INTERVAL 1 DAY),"
        " uniqExactIf(user_did, user_did != '' AND requested_at > now() - INTERVAL 1 DAY),"
        " count(), uniqExactIf(user_did, user_did != '')"
        f" FROM {FeedRequest._meta.db_table} GROUP BY feed_name"
    )
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql)
        return {row[0]: tuple(int(value) for value in row[1:]) for row in cursor.fetchall()}


def feeds_with_users():
    """[{alias, kind, label, enabled, requests_24h, users_24h, requests, users}] for every feed."""
    usage = _usage_by_alias()
    return [
        {
            "alias": feed.alias,
            "kind": feed.kind,
            "label": feed.label.name if feed.label_id else None,
            "enabled": feed.enabled,
            **dict(zip(("requests_24h", "users_24h", "requests", "users"), usage.get(feed.alias, (0, 0, 0, 0)))),
        }
        for feed in Feed.objects.select_related("label").order_by("alias")
    ]
