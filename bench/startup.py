"""Start-up time of `manage.py consume_firehose --replay` against a bare interpreter and its floor.

    .venv/bin/python bench/startup.py [--root CHECKOUT ...] [--runs 7]

Each checkout (`--root`, this one by default; give several to compare commits) gets a fresh
migrated data directory and an empty recording, so the command does nothing but start and stop.
The runs alternate between the checkouts and the baselines, so the machine's load falls on all of
them alike: `python -c pass`, and the floor of any command on the embedded store, FLOOR below (bare
Django set up, a management command's module loaded, and chDB's engine started on the same data
directory with one query). Prints medians and the command's start-up as a multiple of each.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR = """
import os, sys
import django
from django.conf import settings
settings.configure()
django.setup()
from django.core.management import BaseCommand
sys.modules["pyarrow"] = None  # as Skyline's driver loads chDB: without its optional pyarrow
import chdb
chdb.connect(sys.argv[1]).query("SELECT 1")
os._exit(0)  # as the command ends
"""


def timed(command, **options):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, **options)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", help="a checkout to measure (default: this one); repeatable")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="skyline-bench-startup-"))
    empty = work / "empty.jsonl"
    empty.touch()
    checkouts = []
    try:
        for number, root in enumerate(args.root or [ROOT]):
            root = Path(root).resolve()
            python = root / ".venv" / "bin" / "python"
            python = str(python) if python.exists() else sys.executable
            env = {**os.environ, "SKYLINE_DATA_DIR": str(work / f"data{number}")}
            for database in ("default", "clickhouse"):
                subprocess.run([python, "manage.py", "migrate", "--database", database, "--noinput", "-v0"],
                               cwd=root, env=env, check=True)
            checkouts.append((root, python, env))

        bare, setup, commands = [], [], {root: [] for root, _, _ in checkouts}
        for _ in range(args.runs):
            bare.append(timed([sys.executable, "-c", "pass"]))
            setup.append(timed([sys.executable, "-c", FLOOR, str(work / "data0" / "clickhouse")], cwd=ROOT))
            for root, python, env in checkouts:
                commands[root].append(timed([python, "manage.py", "consume_firehose", "--replay", str(empty)],
                                            cwd=root, env=env))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    bare_median, setup_median = statistics.median(bare), statistics.median(setup)
    print(f"start-up: `manage.py consume_firehose --replay` of an empty recording, medians of {args.runs} runs")
    print("| checkout | start-up | `python -c pass` | ratio to it | floor (Django + chDB engine) | ratio to it |")
    print("|---|---|---|---|---|---|")
    for root, times in commands.items():
        median = statistics.median(times)
        print(f"| {root} | {median:.2f} s | {bare_median * 1000:.0f} ms | {median / bare_median:.1f}x "
              f"| {setup_median * 1000:.0f} ms | {median / setup_median:.2f}x |")


if __name__ == "__main__":
    main()
