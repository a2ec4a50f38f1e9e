"""Ingest rate on the embedded store: generated events replayed by `manage.py consume_firehose --replay`.

    .venv/bin/python bench/ingest.py [EVENTS] [CHECKOUT]     (default 200,000 events, this checkout)

Generates the events (seed 1) into a temporary JSON-lines file, migrates a fresh data directory,
then times `manage.py consume_firehose --replay FILE` as a subprocess: events/s over the whole
command, start-up included, and the command's peak memory (its max RSS, from wait4). The rate is
also given as a share of the parse ceiling: orjson.loads of the same lines, timed in the same run
(before and after the command; the faster pass counts).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from apps.indexer.generator import EventGenerator  # noqa: E402

COUNT_ROWS = """
import django
django.setup()
from django.db import connections
with connections["clickhouse"].cursor() as cursor:
    for table in ("repo_records", "posts", "likes", "reposts", "follows", "blocks", "account_statuses",
                  "identities", "firehose_rejects"):
        cursor.execute(f"SELECT count() FROM {table}")
        print(f"  {table}: {cursor.fetchone()[0]:,} rows")
"""


def parse_rate(path):
    """Lines per second that orjson.loads alone gets through."""
    with open(path, "rb") as source:
        lines = source.readlines()
    started = time.perf_counter()
    for line in lines:
        orjson.loads(line)
    return len(lines) / (time.perf_counter() - started)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    root = Path(sys.argv[2]).resolve() if len(sys.argv) > 2 else ROOT
    work = Path(tempfile.mkdtemp(prefix="skyline-ingest-"))
    events = work / "events.jsonl"
    started = time.perf_counter()
    with open(events, "wb") as target:
        target.writelines(EventGenerator(seed=1).lines(count))
    print(f"generated {count:,} events ({events.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")

    env = {**os.environ, "SKYLINE_DATA_DIR": str(work / "data"), "DJANGO_SETTINGS_MODULE": "skyline.settings"}
    manage = [sys.executable, str(root / "manage.py")]
    for database in ("default", "clickhouse"):
        subprocess.run(manage + ["migrate", "--database", database, "--noinput", "-v0"], env=env, check=True)

    ceilings = [parse_rate(events)]
    started = time.perf_counter()
    process = subprocess.Popen(manage + ["consume_firehose", "--replay", str(events)], env=env,
                               stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    output = process.stdout.read().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"consume_firehose failed ({os.waitstatus_to_exitcode(status)}): {output}")
    ceilings.append(parse_rate(events))
    ceiling = max(ceilings)
    print(f"consume_firehose --replay: {output}")
    print("| events | wall time (whole command) | events/s | parse ceiling (orjson.loads) | ratio to ceiling "
          "| peak memory (max RSS) |")
    print("|---|---|---|---|---|---|")
    print(f"| {count:,} | {elapsed:.2f} s | {count / elapsed:,.0f} | {ceiling:,.0f} lines/s | "
          f"{count / elapsed / ceiling:.1%} | {usage.ru_maxrss / 1024:,.0f} MB |")
    print("rows in the tables now (merges may already have collapsed replaced versions):")
    subprocess.run([sys.executable, "-c", COUNT_ROWS], env=env, cwd=root, check=True)


if __name__ == "__main__":
    main()
