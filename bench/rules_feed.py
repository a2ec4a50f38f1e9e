"""How long rules feeds take to compute over a day's firehose, and whether the token index narrows the read.

    .venv/bin/python bench/rules_feed.py [--posts 1500000] [--likes 3000000] [--follows 500] [--runs 3] [--keep DIR]

Seeds a fresh temporary data directory (migrations, then a generated day: `--posts` posts over the
last 24 hours by 200,000 accounts, words drawn from a 20,000-word vocabulary with Zipf-like
frequencies, 70 % English, 15 % Japanese, 10 % Portuguese, a quarter with media, 40 % replies;
`--likes` likes and a tenth as many reposts, most on a few posts; a viewer following `--follows`
accounts among a million follows), generated in ClickHouse with INSERT ... SELECT from numbers().
Then computes a topic feed, a language feed, a hot topic feed and the topic feed of followed
accounts `--runs` times each, prints the best and worst time and how many posts each chose, and
the EXPLAIN indexes = 1 lines that show the granules the token index left for a common topic and a
niche one. The hot kind over the same day is timed too, for scale.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOCABULARY = 20_000
AUTHORS = 200_000
VIEWER = "did:plc:benchviewer0000000000000"
# Topic words placed at ranks where a day holds thousands (cat), hundreds (kitten) and tens
# (axolotl) of them, as a topic does among a firehose's words.
TOPIC_RANKS = {"cat": 300, "kitten": 3000, "axolotl": 15_000}

POSTS = """
INSERT INTO posts (did, rkey, uri, created_at, text, langs, has_embedded_media, parent_uri, root_uri, deleted, time_us)
WITH
    concat('did:plc:', leftPad(toString(number % {authors}), 24, '0')) AS author,
    concat('3lbench', toString(number)) AS key,
    arrayMap(i -> vocabulary[{word}], range(4 + number % 17)) AS words
SELECT author, key, concat('at://', author, '/app.bsky.feed.post/', key),
       now64(6) - toIntervalMillisecond(cityHash64(number, 'age') % 86400000),
       concat(arrayStringConcat(words, ' '), if(number % 997 = 0, ' #caturday', '')),
       multiIf(number % 20 < 14, ['en'], number % 20 < 17, ['ja'], number % 20 < 19, ['pt'], []),
       number % 4 = 0,
       if(number % 5 < 2, concat('at://', author, '/app.bsky.feed.post/3lbench', toString(number + 1)), ''),
       if(number % 5 < 2, concat('at://', author, '/app.bsky.feed.post/3lbench', toString(number + 1)), ''),
       0, number
FROM numbers({posts})
"""

# Rank k of the vocabulary with probability about 1 / (k ln N): a log-uniform draw.
WORD = "toUInt32(least({size}, floor(exp((cityHash64(number, i) % 1000000) / 1000000 * log({size})))))"

LIKES = """
INSERT INTO {table} (actor_did, rkey, subject_uri, subject_did, subject_collection, subject_rkey, created_at, deleted,
                     time_us)
WITH toUInt64(floor(exp((cityHash64(number, '{table}') % 1000000) / 1000000 * log({posts})))) - 1 AS post,
     concat('did:plc:', leftPad(toString(post % {authors}), 24, '0')) AS author
SELECT concat('did:plc:', leftPad(toString(cityHash64(number) % 5000000), 24, '0')), concat('3l{table}', toString(number)),
       concat('at://', author, '/app.bsky.feed.post/3lbench', toString(post)), author, 'app.bsky.feed.post',
       concat('3lbench', toString(post)), now64(6) - toIntervalMillisecond(cityHash64(number, 'at') % 86400000), 0,
       number
FROM numbers({count})
"""

FOLLOWS = """
INSERT INTO follows (actor_did, rkey, target_did, created_at, deleted, time_us)
SELECT if(number < {follows}, '{viewer}', concat('did:plc:f', leftPad(toString(number % 50000), 23, '0'))),
       concat('3lfollow', toString(number)),
       concat('did:plc:', leftPad(toString(cityHash64(number, 'follow') % {authors}), 24, '0')),
       now64(6) - toIntervalDay(number % 300), 0, number
FROM numbers(1000000)
"""

FEEDS = {
    "topic (cat, kitten, \"black cat\", #caturday; no replies)": {
        "words": ["cat", "kitten", "black cat"], "hashtags": ["caturday"], "exclude_replies": True},
    "language (ja, no replies)": {"languages": ["ja"], "exclude_replies": True},
    "hot topic (cat, kitten; at least 2 likes; hot order)": {
        "words": ["cat", "kitten"], "min_likes": 2, "order": "hot"},
    "niche topic (axolotl)": {"words": ["axolotl"]},
    "topic of the viewer's follows": {"words": ["cat", "kitten", "black cat"], "followed_only": True},
}
EXPLAINED = ("topic (cat, kitten, \"black cat\", #caturday; no replies)", "niche topic (axolotl)")


def vocabulary():
    """Made-up words, with the topic words at their ranks."""
    words = [f"w{n}x" for n in range(VOCABULARY)]
    for topic, rank in TOPIC_RANKS.items():
        words[rank] = topic
    words[10] = "black"
    return words


def seed(posts, likes, follows):
    from django.core.management import call_command
    from django.db import connections

    for database in ("default", "clickhouse"):
        call_command("migrate", database=database, interactive=False, verbosity=0)
    vocabulary_sql = "[" + ",".join(f"'{w}'" for w in vocabulary()) + "]"
    started = time.perf_counter()
    with connections["clickhouse"].cursor() as cursor:
        sql = POSTS.format(authors=AUTHORS, posts=posts, word=WORD.format(size=VOCABULARY)).replace(
            "WITH\n", f"WITH\n    {vocabulary_sql} AS vocabulary,\n", 1)
        cursor.execute(sql)
        cursor.execute(LIKES.format(table="likes", posts=posts, authors=AUTHORS, count=likes))
        cursor.execute(LIKES.format(table="reposts", posts=posts, authors=AUTHORS, count=likes // 10))
        cursor.execute(FOLLOWS.format(follows=follows, viewer=VIEWER, authors=AUTHORS))
        # Merged, as background merges leave a running installation (and indexer.0008 an upgraded one):
        # one big INSERT ... SELECT leaves parts that each span the whole day.
        for table in ("posts", "likes", "reposts"):
            cursor.execute(f"OPTIMIZE TABLE {table} FINAL")
        cursor.execute("SELECT count(), countIf(hasToken(lowerUTF8(text), 'cat')), "
                       "countIf(hasToken(lowerUTF8(text), 'kitten')), countIf(text LIKE '%#caturday%') FROM posts")
        total, cats, kittens, caturdays = cursor.fetchone()
    print(f"seeded {total:,} posts ({cats:,} with cat, {kittens:,} with kitten, {caturdays:,} with #caturday), "
          f"{likes:,} likes, {likes // 10:,} reposts, 1,000,000 follows ({follows} by the viewer) "
          f"in {time.perf_counter() - started:.1f} s")


def measure(runs):
    from django.db import connections

    from apps.feeds import rules
    from apps.feeds.algorithms import compute
    from apps.feeds.models import PARAMETERS, Kind
    from apps.feeds.registry import FeedSpec

    parameters = {"gravity": 1.8, "max_posts": 3000, "refresh_seconds": 60}
    for name, definition in FEEDS.items():
        checked = rules.validate(definition)
        viewer = VIEWER if checked["followed_only"] else None
        times, chosen = [], None
        for _ in range(runs):
            started = time.perf_counter()
            chosen = rules.matching(checked, parameters, viewer)
            times.append(time.perf_counter() - started)
        print(f"{name}: {len(chosen):,} posts, best {min(times):.3f} s, worst {max(times):.3f} s")

    # For scale: the hot kind over the same day, which reads the same likes.
    hot = FeedSpec(alias="bench-hot", uri="", kind=Kind.HOT, private=False, listed=True, label_id=None, pinned=(),
                   placeholder=(),
                   parameters={**{key: value for key, (value, _, _) in PARAMETERS[Kind.HOT].items()}, "min_likes": 2})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        chosen = compute(hot)
        times.append(time.perf_counter() - started)
    print(f"for scale, the hot kind (24 h, at least 2 likes): {len(chosen):,} posts, best {min(times):.3f} s, "
          f"worst {max(times):.3f} s")

    for name in EXPLAINED:
        sql, params = rules._query(rules.validate(FEEDS[name]), parameters, None)
        with connections["clickhouse"].cursor() as cursor:
            cursor.execute(f"EXPLAIN indexes = 1 SELECT p.uri {sql}", params)
            plan = [row[0].strip() for row in cursor.fetchall()]
        start = plan.index("Name: posts_text_tokens")
        print(f"EXPLAIN indexes = 1, {name}: posts_text_tokens", plan[start + 2], plan[start + 3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1_500_000)
    parser.add_argument("--likes", type=int, default=3_000_000)
    parser.add_argument("--follows", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="seed DIR once and keep it; later runs only measure")
    args = parser.parse_args()
    data_dir = args.keep or tempfile.mkdtemp(prefix="skyline-bench-rules-")
    seeded = args.keep and (Path(data_dir) / "clickhouse").exists()
    os.environ["SKYLINE_DATA_DIR"] = data_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")
    sys.path.insert(0, str(ROOT))
    try:
        import django

        django.setup()
        if not seeded:
            seed(args.posts, args.likes, args.follows)
        measure(args.runs)
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
