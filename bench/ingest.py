"""Ingest rate on the embedded store: generated events replayed by `manage.py consume_firehose --replay`.

    .venv/bin/python bench/ingest.py [EVENTS]      (default 200,000)

Generates the events (seed 1) into a temporary JSON-lines file, migrates a fresh data directory,
then times `manage.py consume_firehose --replay FILE` as a subprocess: events/s over the whole
command, start-up included, and the command's peak memory (its max RSS, from wait4).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    work = Path(tempfile.mkdtemp(prefix="skyline-ingest-"))
    events = work / "events.jsonl"
    started = time.perf_counter()
    with open(events, "wb") as target:
        target.writelines(EventGenerator(seed=1).lines(count))
    print(f"generated {count:,} events ({events.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")

    env = {**os.environ, "SKYLINE_DATA_DIR": str(work / "data"), "DJANGO_SETTINGS_MODULE": "skyline.settings"}
    manage = [sys.executable, str(ROOT / "manage.py")]
    for database in ("default", "clickhouse"):
        subprocess.run(manage + ["migrate", "--database", database, "--noinput", "-v0"], env=env, check=True)

    started = time.perf_counter()
    process = subprocess.Popen(manage + ["consume_firehose", "--replay", str(events)], env=env,
                               stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    output = process.stdout.read().strip()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"consume_firehose failed ({os.waitstatus_to_exitcode(status)}): {output}")
    print(f"consume_firehose --replay: {output}")
    print(f"| events | wall time (whole command) | events/s | peak memory (max RSS) |")
    print(f"|---|---|---|---|")
    print(f"| {count:,} | {elapsed:.2f} s | {count / elapsed:,.0f} | {usage.ru_maxrss / 1024:,.0f} MB |")
    print("rows in the tables now (merges may already have collapsed replaced versions):")
    subprocess.run([sys.executable, "-c", COUNT_ROWS], env=env, cwd=ROOT, check=True)


if __name__ == "__main__":
    main()
