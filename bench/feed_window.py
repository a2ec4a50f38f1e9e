"""A feed refresh's cost with 1 day and with 30 days of history at the same daily rate, before and after
the migrations that sort posts and likes by record key and merge the re-sorted parts.

    .venv/bin/python bench/feed_window.py [--days 1 30] [--likes-per-day 1000000] [--posts-per-day 200000]

For each history size a fresh temporary data directory is migrated, taken back to the schema before
`indexer.0007_window_sort_keys`, and filled by ClickHouse itself (INSERT ... SELECT from numbers(),
through the project's tables and their views): posts and likes spread evenly over the days with TID
record keys, a fifth of the posts replies, half the likes on one post in fifty, 1% of the posts
deleted and 3% of the likes undone (tombstones: repo and rkey only), a thousand taken-down accounts,
and a community label with 200 members. Whats-hot, top-1h, the community feed (24 h) and a rules feed
ordered hot (24 h, issue 19) are computed as the refresher does (the median of `--runs`; one run on
the account-first schema, whose 30-day reads take tens of seconds) and their statements explained
(`EXPLAIN indexes = 1`: the granules read, summed over the tables read). Then the re-sorting
migration runs (timed: seconds per million rows of posts and likes), background merges are given
three minutes, the feeds are measured; then the migration that merges the copy's parts runs
(timed) and the feeds are measured again, on the same rows each time.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEEDS = ("whats-hot", "top-1h", "community", "rules-hot")
ACCOUNTS = 100_000
MEMBERS = 200
HIDDEN = 1_000
_ALPHABET = "'234567abcdefghijklmnopqrstuvwxyz'"
_READ = re.compile(r"ReadFromMergeTree \((?:\w+\.)?(\w+)\)")
_SELECTED = re.compile(r"Parts: \d+ \| Granules: (\d+)")
# The migration that re-sorts the window tables, the one before it and the one that merges the copy.
REKEY = ("indexer", "0007_window_sort_keys")
BEFORE_REKEY = ("indexer", "0006_plc_state_and_known_accounts_views")
MERGE = ("indexer", "0008_merge_resorted_tables")
# (stage, what the tables are then, the migration that leads to it)
STAGES = (("before", "sorted by account", None), ("resorted", "re-sorted, settled", REKEY),
          ("merged", "re-sorted, merged", MERGE))


def _did(number):
    return f"concat('did:plc:', leftPad(toString({number}), 24, 'a'))"


def _tid(micros, clock):
    """A TID record key in SQL: 11 base32-sortable characters of microseconds, then a 10-bit clock id."""
    chars = f"arrayMap(i -> substring({_ALPHABET}, toUInt64(bitAnd(bitShiftRight({micros}, 50 - 5 * i), 31)) + 1, 1), range(11))"
    return (
        f"concat(arrayStringConcat({chars}), substring({_ALPHABET}, toUInt64(intDiv({clock}, 32) % 32) + 1, 1), "
        f"substring({_ALPHABET}, toUInt64({clock} % 32) + 1, 1))"
    )


def _post_time(j, now_us, posts_per_day):
    return f"toInt64({now_us} - 1 - ({j}) * intDiv(86400000000, {posts_per_day}))"


def _post_uri(j, now_us, posts_per_day):
    return (
        f"concat('at://', {_did(f'cityHash64({j}, 1) % {ACCOUNTS}')}, '/app.bsky.feed.post/', "
        f"{_tid(_post_time(j, now_us, posts_per_day), f'({j}) % 1024')})"
    )


def fill(days, posts_per_day, likes_per_day, now_us):
    """Insert `days` days of posts and likes ending at `now_us`, one day per statement."""
    from django.db import connections

    posts, likes = posts_per_day, likes_per_day
    with connections["clickhouse"].cursor() as cursor:
        for day in range(days):
            cursor.execute(f"""
INSERT INTO posts (did, rkey, uri, created_at, text, langs, has_embedded_media, parent_uri, root_uri, deleted, time_us)
SELECT did, rkey, concat('at://', did, '/app.bsky.feed.post/', rkey), fromUnixTimestamp64Micro(t, 'UTC'),
       concat('post ', toString(j)), ['en'], 0, parent, parent, 0, t + 1000000
FROM (SELECT number AS j, {_post_time('number', now_us, posts)} AS t, {_did(f'cityHash64(j, 1) % {ACCOUNTS}')} AS did,
             {_tid('t', 'j % 1024')} AS rkey,
             if(cityHash64(number, 2) % 5 = 0, {_post_uri(f'number + 1 + cityHash64(number, 3) % 1000', now_us, posts)}, '')
               AS parent
      FROM numbers({day * posts}, {posts}))""")
            cursor.execute(f"""
INSERT INTO posts (did, rkey, uri, created_at, text, langs, has_embedded_media, parent_uri, root_uri, deleted, time_us)
SELECT {_did(f'cityHash64(j, 1) % {ACCOUNTS}')}, {_tid('t', 'j % 1024')}, {_post_uri('j', now_us, posts)},
       fromUnixTimestamp64Micro(t + 3600000000, 'UTC'), '', [], 0, '', '', 1, t + 3600000000
FROM (SELECT number AS j, {_post_time('number', now_us, posts)} AS t FROM numbers({day * posts}, {posts}))
WHERE cityHash64(j, 9) % 100 = 0 AND t + 3600000000 < {now_us}""")
            # Half the likes go to one post in fifty (the popular ones), the rest anywhere in the day
            # before the like; each picks a post created before it.
            like = f"""
SELECT {_did(f'cityHash64(k, 4) % {ACCOUNTS}')} AS actor_did, {_tid('t', 'k % 1024')} AS rkey, t,
       toUInt64(intDiv(k * {posts}, {likes}) + if(cityHash64(k, 5) % 2 = 0,
           50 + intDiv(toUInt64(pow((cityHash64(k, 6) % 1000000) / 1000000, 2) * {posts}), 50) * 50
              - intDiv(k * {posts}, {likes}) % 50,
           1 + cityHash64(k, 7) % {posts})) AS j
FROM (SELECT number AS k, toInt64({now_us} - 1 - number * intDiv(86400000000, {likes})) AS t
      FROM numbers({day * likes}, {likes}))"""
            cursor.execute(f"""
INSERT INTO likes (actor_did, rkey, subject_uri, subject_did, subject_collection, subject_rkey, created_at, deleted, time_us)
SELECT actor_did, rkey, concat('at://', subject_did, '/app.bsky.feed.post/', subject_rkey), subject_did,
       'app.bsky.feed.post', subject_rkey, fromUnixTimestamp64Micro(t, 'UTC'), 0, t + 1000000
FROM (SELECT actor_did, rkey, t, {_did(f'cityHash64(j, 1) % {ACCOUNTS}')} AS subject_did,
             {_tid(_post_time('j', now_us, posts), 'j % 1024')} AS subject_rkey
      FROM ({like}))""")
            cursor.execute(f"""
INSERT INTO likes (actor_did, rkey, subject_uri, subject_did, subject_collection, subject_rkey, created_at, deleted, time_us)
SELECT actor_did, rkey, '', '', '', '', fromUnixTimestamp64Micro(t + 600000000, 'UTC'), 1, t + 600000000
FROM ({like}) WHERE cityHash64(rkey, 8) % 100 < 3 AND t + 600000000 < {now_us}""")
        cursor.execute(f"""
INSERT INTO account_statuses (did, active, status, seq, changed_at, time_us)
SELECT {_did(f'{ACCOUNTS} - 1 - number')}, 0, 'takendown', number, now64(6), {now_us}
FROM numbers({HIDDEN})""")
    _settle()
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute("SELECT table, sum(rows), count() FROM system.parts WHERE active AND database = currentDatabase() "
                       "AND table IN ('posts', 'likes') GROUP BY table ORDER BY table")
        return {table: (int(rows), int(parts)) for table, rows, parts in cursor.fetchall()}


def _settle():
    """Wait (3 minutes at most) for the background merges, as they would run between refreshes."""
    from django.db import connections

    with connections["clickhouse"].cursor() as cursor:
        for _ in range(180):
            cursor.execute("SELECT count() FROM system.merges WHERE database = currentDatabase()")
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(1)


def granules_read(sql, params):
    """Granules each table's read selects, summed over the reads of one statement."""
    from django.db import connections

    with connections["clickhouse"].cursor() as cursor:
        cursor.execute("EXPLAIN indexes = 1 " + sql, params)
        plan = "\n".join(line for (line,) in cursor.fetchall())
    found, table = {}, None
    for line in plan.splitlines():
        read = _READ.search(line)
        if read:
            table = read.group(1)
            continue
        selected = _SELECTED.search(line)
        if selected and table is not None:
            found[table] = found.get(table, 0) + int(selected.group(1))
            table = None
    return found


def measure(args):
    """Run in the child process that owns a fresh data directory: migrate, fill, time the feeds."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    for database in ("default", "clickhouse"):
        call_command("migrate", database=database, interactive=False, verbosity=0)
    call_command("migrate", *BEFORE_REKEY, database="clickhouse", interactive=False, verbosity=0)
    started = time.perf_counter()
    tables = fill(args.history, args.posts_per_day, args.likes_per_day, int(time.time() * 1_000_000))
    filled = time.perf_counter() - started
    specs = _feeds()
    cache.clear()
    measured = {"tables": tables, "fill_seconds": filled, "migration_seconds": {}}
    for stage, _, migration in STAGES:
        if migration is not None:
            started = time.perf_counter()
            call_command("migrate", *migration, database="clickhouse", interactive=False, verbosity=0)
            measured["migration_seconds"][stage] = time.perf_counter() - started
            _settle()
        runs = 1 if migration is None else args.runs
        measured[stage] = {spec.alias: _measure_feed(spec, runs) for spec in specs}
    measured["refresh_seconds"] = {spec.alias: spec.refresh_seconds for spec in specs}
    print(json.dumps(measured))


def _feeds():
    from apps.accounts.models import ActorLabel, Label
    from apps.feeds.models import Feed
    from apps.feeds.registry import FeedSpec

    label = Label.objects.create(name="bench")
    ActorLabel.objects.bulk_create(ActorLabel(label=label, did=f"did:plc:{n:a>24}") for n in range(MEMBERS))
    Feed.objects.create(alias="community", kind="label", label=label, display_name="Community",
                        parameters={"hours": 24})
    Feed.objects.create(alias="rules-hot", kind="rules", display_name="Hot top-level posts",
                        rules={"order": "hot", "hours": 24, "exclude_replies": True, "min_likes": 2})
    return [FeedSpec.of(Feed.objects.get(alias=alias)) for alias in FEEDS]


def _measure_feed(spec, runs):
    from apps.feeds.algorithms import compute, statement

    seconds, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        size = len(compute(spec))
        seconds.append(time.perf_counter() - started)
    return {"seconds": statistics.median(seconds), "posts": size, "granules": granules_read(*statement(spec))}


def run_child(args, history):
    data_dir = tempfile.mkdtemp(prefix="skyline-bench-window-")
    try:
        command = [sys.executable, __file__, "--history", str(history), "--runs", str(args.runs),
                   "--likes-per-day", str(args.likes_per_day), "--posts-per-day", str(args.posts_per_day)]
        done = subprocess.run(command, env={**os.environ, "SKYLINE_DATA_DIR": data_dir}, check=True,
                              capture_output=True, text=True, cwd=ROOT)
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def report(args, measured):
    first, last = args.days[0], args.days[-1]
    print(f"\n{args.likes_per_day:,} likes and {args.posts_per_day:,} posts a day; seconds are the median of "
          f"{args.runs} runs (1 run sorted by account)")
    print("feed".ljust(11) + "tables".ljust(20)
          + "".join(f"{f'granules {d}d':>14}{f'seconds {d}d':>13}" for d in args.days) + f"{'ratio':>8}")
    for alias in FEEDS:
        for stage, schema, _ in STAGES:
            feeds = [measured[days][stage][alias] for days in args.days]
            cells = "".join(f"{sum(feed['granules'].values()):>14,}{feed['seconds']:>13.3f}" for feed in feeds)
            print(alias.ljust(11) + schema.ljust(20) + cells + f"{feeds[-1]['seconds'] / feeds[0]['seconds']:>8.2f}")
    for days in args.days:
        for stage, _, _ in STAGES:
            detail = "; ".join(f"{alias}: " + ", ".join(f"{t} {g}" for t, g in feed["granules"].items())
                               + f" ({feed['posts']} posts)" for alias, feed in measured[days][stage].items())
            print(f"  {days}d {stage}: {detail}")
    hot = measured[first]["merged"]["whats-hot"]["seconds"]
    interval = measured[first]["refresh_seconds"]["whats-hot"]
    print(f"\nwhats-hot with {first} day(s) of history: {hot:.3f} s, {hot / interval:.3f} of its {interval} s refresh "
          f"interval (target < 0.1); with {last} days: {last}-day / {first}-day time "
          + ", ".join(f"{alias} {measured[last]['merged'][alias]['seconds'] / measured[first]['merged'][alias]['seconds']:.2f}"
                      for alias in FEEDS) + " (target <= 2)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1, 30])
    parser.add_argument("--likes-per-day", type=int, default=1_000_000)
    parser.add_argument("--posts-per-day", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--history", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.history:
        measure(args)
        return

    measured = {}
    for days in args.days:
        measured[days] = found = run_child(args, days)
        rows = sum(rows for rows, _ in found["tables"].values())
        tables = ", ".join(f"{table} {rows:,} rows in {parts} parts" for table, (rows, parts) in found["tables"].items())
        migrations = ", ".join(f"{MIGRATION_NAMES[stage]} {seconds:.1f} s ({seconds / rows * 1_000_000:.2f} s per million rows)"
                               for stage, seconds in found["migration_seconds"].items())
        print(f"{days} day(s) of history: {tables} (filled in {found['fill_seconds']:.0f} s); {migrations}", flush=True)
    report(args, measured)


MIGRATION_NAMES = {stage: migration[1] for stage, _, migration in STAGES if migration is not None}

if __name__ == "__main__":
    main()
