"""Insert rates into `posts` on the embedded store: the ORM against the raw insert path.

    .venv/bin/python bench/insert.py [ROWS]

Runs on a fresh temporary data directory and prints rows/s for each method.
"""

import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["SKYLINE_DATA_DIR"] = tempfile.mkdtemp(prefix="skyline-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

from apps.indexer.models import Post  # noqa: E402
from apps.indexer.rows import COLUMNS as TABLE_COLUMNS  # noqa: E402

COLUMNS = TABLE_COLUMNS["posts"]


def rows(count, offset):
    now = datetime.datetime.now(datetime.timezone.utc)
    for i in range(offset, offset + count):
        did = f"did:plc:{i % 50_000:024d}"
        rkey = f"3l{i:011d}"
        yield (did, rkey, f"at://{did}/app.bsky.feed.post/{rkey}", now,
               f"post number {i} with some ordinary text in it", ["en"], i % 3 == 0, "", "", 0, i)


def timed(label, count, action):
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    print(f"| {label} | {count:,} | {elapsed:.2f} s | {count / elapsed:,.0f} |")


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    call_command("migrate", database="clickhouse", verbosity=0)
    clickhouse = connections["clickhouse"]
    print("| method | rows | time | rows/s |")
    print("|---|---|---|---|")

    def orm():
        Post.objects.bulk_create(
            [Post(**dict(zip(COLUMNS, row))) for row in rows(count, 0)], batch_size=10_000
        )

    def raw():
        batch = list(rows(count, count))
        for start in range(0, count, 20_000):
            clickhouse.insert_rows("posts", COLUMNS, batch[start:start + 20_000])

    timed("ORM bulk_create (batches of 10k)", count, orm)
    timed("insert_rows (streamed JSONCompactEachRow, 20k per insert)", count, raw)
    with clickhouse.cursor() as cursor:
        cursor.execute("SELECT count() FROM posts")
        assert cursor.fetchone()[0] == 2 * count


if __name__ == "__main__":
    main()
