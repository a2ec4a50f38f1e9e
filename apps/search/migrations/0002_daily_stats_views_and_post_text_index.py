"""Daily statistics kept as events arrive, and a token index for post search.

One materialized view per firehose table adds, per insert block, +1 for each record created and
-1 for each delete tombstone into `daily_stats`, plus the creating accounts. A record's day is
the UTC day of its rkey when the rkey is a TID (the time the record was written to the repo),
else of its createdAt. A tombstone carries only the repo and the rkey, so the TID is what lets a
delete (an undone like, an unfollow) come off the day its record was counted on; a tombstone
whose rkey is not a TID cannot be placed and is left out.
"""

from django.db import migrations

_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_TID = "'^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$'"


def _tid_micros(rkey):
    # The top 11 characters of a TID are its microsecond timestamp (base32-sortable); the last two
    # carry the clock id. Spelt out per character: no arrays, so it holds in any ClickHouse.
    return " + ".join(
        f"bitShiftLeft(toUInt64(position('{_ALPHABET}', substring({rkey}, {i + 1}, 1)) - 1), {50 - 5 * i})"
        for i in range(11)
    )


RECORD_DAY = (
    f"if(match(rkey, {_TID}), toDate(fromUnixTimestamp64Micro(toInt64({_tid_micros('rkey')}), 'UTC')),"
    " toDate(created_at, 'UTC'))"
)

# (metric, source table, the column naming the record's account)
METRICS = [
    ("posts", "posts", "did"),
    ("likes", "likes", "actor_did"),
    ("follows", "follows", "actor_did"),
    ("blocks", "blocks", "actor_did"),
]


def _metric_view(metric, table, actor):
    return f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS daily_stats_{metric}_mv TO daily_stats AS{metric_query(metric, table, actor)}"""


def metric_query(metric, table, actor, record_day=RECORD_DAY):
    """The view's query; `record_day` is how it reads a record's day (0006 reads it another way)."""
    return f"""
SELECT {record_day} AS date, '{metric}' AS metric_type,
       toInt64(sum(if(deleted = 0, 1, -1))) AS count,
       uniqCombinedStateIf(14)({actor}, deleted = 0) AS actors
FROM {table}
WHERE deleted = 0 OR match(rkey, {_TID})
GROUP BY date
"""


def _metric_backfill(metric, table, actor):
    # What was indexed before the view existed, as it stands now (FINAL: deletes already applied).
    return f"""
INSERT INTO daily_stats (date, metric_type, count, actors)
SELECT {RECORD_DAY} AS date, '{metric}', toInt64(count()), uniqCombinedState(14)({actor})
FROM {table} FINAL
WHERE deleted = 0
GROUP BY date
"""


# Every account seen committing anything, per day of the event: the base of `total_users`.
ACCOUNTS_VIEW = """
CREATE MATERIALIZED VIEW IF NOT EXISTS daily_stats_accounts_mv TO daily_stats AS
SELECT toDate(fromUnixTimestamp64Micro(time_us), 'UTC') AS date, 'accounts' AS metric_type,
       toInt64(count()) AS count, uniqCombinedState(14)(repo) AS actors
FROM repo_records
GROUP BY date
"""

ACCOUNTS_BACKFILL = """
INSERT INTO daily_stats (date, metric_type, count, actors)
SELECT toDate(fromUnixTimestamp64Micro(time_us), 'UTC') AS date, 'accounts', toInt64(count()),
       uniqCombinedState(14)(repo)
FROM repo_records
GROUP BY date
"""

# hasToken(lowerUTF8(text), word) reads only the granules whose bloom filter may hold the word.
TEXT_INDEX = (
    "ALTER TABLE posts ADD INDEX IF NOT EXISTS posts_text_tokens lowerUTF8(text) TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 1"
)
MATERIALIZE_TEXT_INDEX = "ALTER TABLE posts MATERIALIZE INDEX posts_text_tokens"


class Migration(migrations.Migration):
    dependencies = [("search", "0001_initial"), ("indexer", "0002_read_views")]

    operations = [
        *[
            migrations.RunSQL(
                [_metric_view(metric, table, actor), _metric_backfill(metric, table, actor)],
                f"DROP VIEW IF EXISTS daily_stats_{metric}_mv",
                hints={"database": "clickhouse"},
            )
            for metric, table, actor in METRICS
        ],
        migrations.RunSQL(
            [ACCOUNTS_VIEW, ACCOUNTS_BACKFILL],
            "DROP VIEW IF EXISTS daily_stats_accounts_mv",
            hints={"database": "clickhouse"},
        ),
        migrations.RunSQL(
            [TEXT_INDEX, MATERIALIZE_TEXT_INDEX],
            "ALTER TABLE posts DROP INDEX IF EXISTS posts_text_tokens",
            hints={"database": "clickhouse"},
        ),
    ]
