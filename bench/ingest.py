"""Ingest rate on the embedded store: generated events replayed by `manage.py consume_firehose --replay`.

    .venv/bin/python bench/ingest.py [--events 200000] [--runs 3] [--root CHECKOUT ...]

Generates the events (seed 1) into a temporary JSON-lines file, then, for each run and each
checkout (`--root`, this one by default; give several to compare commits: the runs alternate
between them, so the machine's load falls on all alike), migrates a fresh data directory and times
`manage.py consume_firehose --replay FILE` as a subprocess: events/s over the whole command,
start-up included, and the peak memory of the command and its children (max RSS, from wait4).
Every run also times the parse ceiling, orjson.loads of the same lines, just before the command;
each run's rate is judged as a share of its own ceiling, and the medians are printed.

With 1,000,000 events or more it also prints, for every 100,000 events the command has read
(the position of its open recording, from /proc), the time, the rate over those 100,000 and the
resident memory of the command and its children: flat memory and a steady rate are the steady state.
"""

import argparse
import bisect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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
STEP = 100_000


def parse_rate(lines):
    """Lines per second that orjson.loads alone gets through."""
    started = time.perf_counter()
    for line in lines:
        orjson.loads(line)
    return len(lines) / (time.perf_counter() - started)


def family(pid):
    """`pid` and its descendants."""
    pids, found = [pid], 0
    while found < len(pids):
        current = pids[found]
        found += 1
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pids += [int(child) for child in children.read().split()]
        except OSError:
            pass
    return pids


def rss_mb(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def read_position(pids, path):
    """How far any of `pids` has read the file at `path` (0 when none has it open)."""
    best = 0
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                        best = max(best, int(info.readline().split()[1]))
        except OSError:
            pass
    return best


def watch(process, events, offsets, started, rows, peak):
    """Append (events read, seconds, MB resident) at every STEP events read, and keep the peak of
    the resident memory of the command and its children together in peak[0], until `process` ends."""
    path = str(events)
    next_step = STEP
    while process.poll() is None:
        pids = family(process.pid)
        peak[0] = max(peak[0], rss_mb(pids))
        read = bisect.bisect_right(offsets, read_position(pids, path)) - 1
        while read >= next_step:
            rows.append((next_step, time.perf_counter() - started, rss_mb(pids)))
            next_step += STEP
        time.sleep(0.05)


def run_once(root, events, lines, offsets, work, label):
    env = {**os.environ, "SKYLINE_DATA_DIR": str(work / f"data-{label}"), "DJANGO_SETTINGS_MODULE": "skyline.settings"}
    shutil.rmtree(env["SKYLINE_DATA_DIR"], ignore_errors=True)
    manage = [sys.executable, str(root / "manage.py")]
    for database in ("default", "clickhouse"):
        subprocess.run(manage + ["migrate", "--database", database, "--noinput", "-v0"], env=env, check=True, cwd=root)
    ceiling = parse_rate(lines)
    started = time.perf_counter()
    process = subprocess.Popen(manage + ["consume_firehose", "--replay", str(events)], env=env, cwd=root,
                               stdout=subprocess.PIPE, text=True)
    steps, peak = [], [0.0]
    watcher = threading.Thread(target=watch, args=(process, events, offsets, started, steps, peak), daemon=True)
    watcher.start()
    output = process.stdout.read().strip()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    watcher.join()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"consume_firehose failed ({os.waitstatus_to_exitcode(status)}): {output}")
    return {"elapsed": elapsed, "ceiling": ceiling, "rate": len(lines) / elapsed,
            "ratio": len(lines) / elapsed / ceiling, "rss": usage.ru_maxrss / 1024, "output": output,
            "steps": steps if len(lines) >= 10 * STEP else [], "peak_sum": peak[0], "env": env}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--root", action="append", help="a checkout to measure (default: this one); repeatable")
    args = parser.parse_args()
    roots = [Path(root).resolve() for root in args.root or [ROOT]]

    work = Path(tempfile.mkdtemp(prefix="skyline-ingest-"))
    events = work / "events.jsonl"
    started = time.perf_counter()
    with open(events, "wb") as target:
        target.writelines(EventGenerator(seed=1).lines(args.events))
    with open(events, "rb") as source:
        lines = source.readlines()
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    print(f"generated {args.events:,} events ({events.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s")

    results = {root: [] for root in roots}
    try:
        for run in range(args.runs):
            for number, root in enumerate(roots):
                results[root].append(run_once(root, events, lines, offsets, work, f"{number}-{run}"))
        print(f"consume_firehose --replay of {args.events:,} events, medians of {args.runs} runs "
              f"(each run's rate against its own parse ceiling)")
        print("| checkout | wall time (whole command) | events/s | parse ceiling (orjson.loads) | ratio to ceiling "
              "| peak memory (max RSS) |")
        print("|---|---|---|---|---|---|")
        for root, runs in results.items():
            print(f"| {root} | {statistics.median(r['elapsed'] for r in runs):.2f} s "
                  f"| {statistics.median(r['rate'] for r in runs):,.0f} "
                  f"| {statistics.median(r['ceiling'] for r in runs):,.0f} lines/s "
                  f"| {statistics.median(r['ratio'] for r in runs):.1%} "
                  f"| {max(r['rss'] for r in runs):,.0f} MB |")
            ratios = ", ".join(f"{r['ratio']:.1%}" for r in runs)
            peak = max(r["peak_sum"] for r in runs)
            print(f"  ratios of the runs: {ratios}; peak RSS of the command and its children together "
                  f"(sampled): {peak:,.0f} MB; last output: {runs[-1]['output']}")
        for root, runs in results.items():
            steps = runs[-1]["steps"]
            if steps:
                print(f"steady state, last run of {root} (events read by the command, time since its start, "
                      "rate over the step, resident memory of the command and its children):")
                print("| events read | seconds | events/s over the step | RSS |")
                print("|---|---|---|---|")
                previous = 0.0
                for done, seconds, rss in steps:
                    print(f"| {done:,} | {seconds:.1f} | {STEP / (seconds - previous):,.0f} | {rss:,.0f} MB |")
                    previous = seconds
        print("rows in the tables after the last run (merges may already have collapsed replaced versions):")
        last = results[roots[0]][-1]
        subprocess.run([sys.executable, "-c", COUNT_ROWS], env=last["env"], cwd=roots[0], check=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
