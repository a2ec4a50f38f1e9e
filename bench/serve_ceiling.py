"""getFeedSkeleton as a share of the server's ceiling, both measured in the same run.

    .venv/bin/python bench/serve_ceiling.py [--root CHECKOUT ...] [--rounds 3] [--duration 10]

The ceiling is a bare WSGI callable answering the very bytes Skyline answered, under gunicorn with
the embedded default's server shape (1 worker, 8 threads, gthread). Each checkout (`--root`, this
one by default; give several to compare commits) gets a fresh temporary data directory seeded with
3,000 posts of the last hour and their likes, and a community feed whose label holds 200 authors.
Then, round by round, `manage.py serve --no-consumer --no-plc-export` and the bare app are driven in
turn with `wrk -t1 -c8 -d10s` on three requests: whats-hot (limit 50), the community feed, and
whats-hot's second page by cursor. Prints req/s, p50 and p99 (medians over the rounds), errors, and
Skyline's req/s as a share of the bare app's. Needs wrk (`apt-get install wrk`).
"""

import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONNECTIONS = 8

SEED = """
import datetime
import django
django.setup()
from django.core.management import call_command
from django.db import connections
from apps.accounts.models import ActorLabel, Label
from apps.feeds.models import Feed
from apps.indexer.rows import COLUMNS

for database in ("default", "clickhouse"):
    call_command("migrate", database=database, interactive=False, verbosity=0)
now = datetime.datetime.now(datetime.timezone.utc)
post_rows, like_rows = [], []
for n in range(3000):
    did, rkey = f"did:plc:{n % 500:024d}", f"3lpost{n:08d}"
    uri = f"at://{did}/app.bsky.feed.post/{rkey}"
    created = now - datetime.timedelta(minutes=n % 50 + 6)
    post_rows.append((did, rkey, uri, created, "hello", ["en"], 0, "", "", 0, n))
    for m in range(11 + n % 50):
        like_rows.append((f"did:plc:{m:024d}", f"3l{n:08d}{m:03d}", uri, did, "app.bsky.feed.post", rkey, now, 0, n))
clickhouse = connections["clickhouse"]
clickhouse.insert_rows("posts", COLUMNS["posts"], post_rows)
clickhouse.insert_rows("likes", COLUMNS["likes"], like_rows)
label = Label.objects.create(name="bench")
ActorLabel.objects.bulk_create(ActorLabel(label=label, did=f"did:plc:{n:024d}") for n in range(200))
Feed.objects.create(alias="community", kind="label", display_name="Community", label=label)
"""

# The ceiling: answers each path with the bytes Skyline gave for it (read on the first request).
_BARE_BODIES = {}


def bare(environ, start_response):
    if not _BARE_BODIES:
        _BARE_BODIES.update(orjson.loads(Path(os.environ["BENCH_BARE_BODIES"]).read_bytes()))
    query = environ.get("QUERY_STRING")
    body = _BARE_BODIES[environ["PATH_INFO"] + ("?" + query if query else "")].encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port, path):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until_up(port, process, path, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            if get(port, path)[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not come up")


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wrk(port, path, duration):
    """{"rps", "p50", "p99" (ms), "errors"} of one wrk run."""
    output = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def latency(percent):
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M).groups()
        return float(value) * units[unit]

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": latency(50), "p99": latency(99),
        "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0),
    }


class Checkout:
    """One checkout's `manage.py serve` on its own seeded data directory."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.data_dir = tempfile.mkdtemp(prefix="skyline-bench-serve-")
        self.port = free_port()
        self.env = {**os.environ, "SKYLINE_DATA_DIR": self.data_dir, "SERVICE_ENDPOINT": f"http://127.0.0.1:{self.port}",
                    "DJANGO_SETTINGS_MODULE": "skyline.settings", "LOG_FORMAT": "text"}
        python = self.root / ".venv" / "bin" / "python"
        self.python = str(python) if python.exists() else sys.executable
        subprocess.run([self.python, "-c", SEED], cwd=self.root, env=self.env, check=True)

    def start(self, consumer=False, **env):
        """`manage.py serve` (without the PLC exporter; without the consumer unless asked), `env` added."""
        self.server = subprocess.Popen(
            [self.python, "manage.py", "serve", "--bind", f"127.0.0.1:{self.port}", "--no-plc-export",
             *([] if consumer else ["--no-consumer"])],
            cwd=self.root, env={**self.env, **env}, stdout=subprocess.DEVNULL,
            stderr=open(Path(self.data_dir) / "serve.log", "ab"),  # noqa: SIM115  (the server's to close)
        )
        wait_until_up(self.port, self.server, "/.well-known/did.json")

    def log_tail(self, lines=30):
        """The end of what the servers of this checkout wrote on stderr."""
        return "\n".join((Path(self.data_dir) / "serve.log").read_text(errors="replace").splitlines()[-lines:])

    def paths(self):
        """{name: path} of the three requests, and {path: body} of Skyline's answers to them."""
        did = quote(f"did:web:127.0.0.1%3A{self.port}", safe="")

        def skeleton(alias, limit, cursor=None):
            path = f"/xrpc/app.bsky.feed.getFeedSkeleton?feed=at%3A%2F%2F{did}%2Fapp.bsky.feed.generator%2F{alias}&limit={limit}"
            return path + (f"&cursor={quote(cursor, safe='')}" if cursor else "")

        paths = {"whats-hot": skeleton("whats-hot", 50), "community": skeleton("community", 50)}
        bodies = {}
        for path in paths.values():
            status, bodies[path] = get(self.port, path)
            if status != 200 or not orjson.loads(bodies[path])["feed"]:
                raise SystemExit(f"{self.root}: {path} answered {status}: {bodies[path][:200]!r}\n{self.log_tail()}")
        paths["cursor page"] = skeleton("whats-hot", 50, orjson.loads(bodies[paths["whats-hot"]])["cursor"])
        bodies[paths["cursor page"]] = get(self.port, paths["cursor page"])[1]
        return paths, bodies

    def close(self):
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_bare(bodies, python):
    port = free_port()
    bodies_file = Path(tempfile.mkstemp(prefix="skyline-bench-bare-", suffix=".json")[1])
    bodies_file.write_bytes(orjson.dumps({path: body.decode() for path, body in bodies.items()}))
    process = subprocess.Popen(
        [python, "-m", "gunicorn", "--workers", "1", "--worker-class", "gthread", "--threads", "8",
         "--bind", f"127.0.0.1:{port}", "--chdir", str(HERE), "serve_ceiling:bare"],
        env={**os.environ, "BENCH_BARE_BODIES": str(bodies_file)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_until_up(port, process, next(iter(bodies)))
    return process, port, bodies_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", help="a checkout to measure (default: this one); repeatable")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")

    checkouts = [Checkout(root) for root in args.root or [ROOT]]
    results = {}  # (checkout, request, "skyline" or "bare") -> [wrk results]
    try:
        for round_number in range(args.rounds):
            for checkout in checkouts:
                checkout.start()
                try:
                    paths, bodies = checkout.paths()
                    bare_process, bare_port, bodies_file = start_bare(bodies, sys.executable)
                    try:
                        for name, path in paths.items():
                            # Alternate which goes first, so drift in the machine's load evens out.
                            order = [("bare", bare_port), ("skyline", checkout.port)]
                            for which, port in order if round_number % 2 else order[::-1]:
                                results.setdefault((checkout.root, name, which), []).append(wrk(port, path, args.duration))
                    finally:
                        stop(bare_process)
                        bodies_file.unlink()
                finally:
                    stop(checkout.server)
                print(f"round {round_number + 1}/{args.rounds} done for {checkout.root}", file=sys.stderr)
    finally:
        for checkout in checkouts:
            checkout.close()

    def median(runs, key):
        return statistics.median(run[key] for run in runs)

    print(f"getFeedSkeleton vs a bare gunicorn app answering the same bytes (gunicorn 1 worker, 8 threads, "
          f"gthread; wrk -t1 -c{CONNECTIONS} -d{args.duration}s; medians of {args.rounds} rounds)")
    print("| checkout | request | req/s | p50 ms | p99 ms | errors | bare req/s | bare p99 ms | ratio to bare |")
    print("|---|---|---|---|---|---|---|---|---|")
    for checkout in checkouts:
        for name in ("whats-hot", "community", "cursor page"):
            ours, ceiling = results[(checkout.root, name, "skyline")], results[(checkout.root, name, "bare")]
            ratios = [a["rps"] / b["rps"] for a, b in zip(ours, ceiling)]
            print(f"| {checkout.root} | {name} | {median(ours, 'rps'):,.0f} | {median(ours, 'p50'):.2f} | "
                  f"{median(ours, 'p99'):.2f} | {sum(run['errors'] for run in ours)} | {median(ceiling, 'rps'):,.0f} | "
                  f"{median(ceiling, 'p99'):.2f} | {statistics.median(ratios):.0%} |")


if __name__ == "__main__":
    main()
