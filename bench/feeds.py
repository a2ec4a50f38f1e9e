"""getFeedSkeleton throughput and latency on a cached trending feed, against a real server.

    .venv/bin/python bench/feeds.py [--clients 8] [--requests 20000] [--posts 3000]

Seeds a fresh temporary data directory (migrations, then `--posts` posts in the last hour with
11 to 60 likes each, so top-1h holds them all), starts `manage.py serve` on a free loopback port,
and has `--clients` concurrent keep-alive clients page through top-1h (a first page, then four
pages by cursor, over and over; limit 30) until `--requests` answers came back. Then the same
clients drive the ceiling of bench/serve_ceiling.py (a bare WSGI app under gunicorn with the same
server shape, answering the very bytes Skyline answered for each page, as recorded in the warm-up)
with the same workload. Prints requests/s and p50/p90/p99/max latency as the clients saw them, for
both, and Skyline's requests/s as a share of the bare app's. The clients run in this process and
take their share of the CPU, so the ratio is lower than bench/serve_ceiling.py's (wrk).
"""

import argparse
import datetime
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import orjson
from serve_ceiling import start_bare, stop

ROOT = Path(__file__).resolve().parent.parent
PAGES_PER_VISIT = 5
LIMIT = 30


def seed(posts):
    """Run in the child process that owns the fresh data directory: migrate and index the events."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from apps.indexer.rows import COLUMNS

    for database in ("default", "clickhouse"):
        call_command("migrate", database=database, interactive=False, verbosity=0)
    now = datetime.datetime.now(datetime.timezone.utc)
    post_rows, like_rows = [], []
    for n in range(posts):
        did, rkey = f"did:plc:{n % 500:024d}", f"3lpost{n:08d}"
        uri = f"at://{did}/app.bsky.feed.post/{rkey}"
        post_rows.append((did, rkey, uri, now - datetime.timedelta(minutes=n % 50 + 1), "hello", ["en"], 0, "", "", 0, n))
        for m in range(11 + n % 50):
            like_rows.append((f"did:plc:{m:024d}", f"3l{n:08d}{m:03d}", uri, did, "app.bsky.feed.post", rkey, now, 0, n))
    clickhouse = connections["clickhouse"]
    clickhouse.insert_rows("posts", COLUMNS["posts"], post_rows)
    clickhouse.insert_rows("likes", COLUMNS["likes"], like_rows)
    print(f"seeded {len(post_rows)} posts and {len(like_rows)} likes")


class Client:
    """A keep-alive HTTP/1.1 client on a raw socket: cheap enough not to be what is measured."""

    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buffer = b""

    def get(self, path):
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(b": ", 1) for line in lines[1:])
        length = int(headers.get(b"Content-Length", b"0"))
        while len(self.buffer) < length:
            self._receive()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if headers.get(b"Connection", b"").lower() == b"close":
            self.close()
        return status, body

    def _receive(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""


def drive(port, feed, total, clients, record=None):
    """(seconds, sorted latencies, errors) of `total` answers; each page's body kept in `record` if given."""
    base = f"/xrpc/app.bsky.feed.getFeedSkeleton?feed={quote(feed, safe='')}&limit={LIMIT}"
    latencies, errors, counter, lock = [], [], [0], threading.Lock()

    def run():
        client, cursor, page, mine = Client(port), None, 0, []
        while True:
            with lock:
                if counter[0] >= total:
                    break
                counter[0] += 1
            path = base if cursor is None else f"{base}&cursor={quote(cursor, safe='')}"
            started = time.perf_counter()
            try:
                status, body = client.get(path)
            except OSError as exc:
                errors.append(str(exc))
                client.close()
                continue
            mine.append(time.perf_counter() - started)
            if status != 200:
                errors.append(f"HTTP {status}: {body[:200]!r}")
                cursor = None
                continue
            if record is not None:
                record[path] = body
            page += 1
            cursor = orjson.loads(body).get("cursor") if page % PAGES_PER_VISIT else None
        client.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, sorted(latencies), errors


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(port, server, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}")
        try:
            if Client(port).get("/.well-known/did.json")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not come up")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--posts", type=int, default=3000)
    parser.add_argument("--seed", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        seed(args.posts)
        return

    data_dir = tempfile.mkdtemp(prefix="skyline-bench-feeds-")
    port = free_port()
    did = f"did:web:127.0.0.1%3A{port}"
    env = {**os.environ, "SKYLINE_DATA_DIR": data_dir, "SERVICE_ENDPOINT": f"http://127.0.0.1:{port}"}
    try:
        subprocess.run([sys.executable, __file__, "--seed", "1", "--posts", str(args.posts)], env=env, check=True)
        server = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_up(port, server)
            feed = f"at://{did}/app.bsky.feed.generator/top-1h"
            bodies = {}  # the first request computes and caches the list
            warm, _, warm_errors = drive(port, feed, 200, 1, record=bodies)
            if warm_errors:
                raise SystemExit(f"warm-up failed: {warm_errors[0]}")
            elapsed, latencies, errors = drive(port, feed, args.requests, args.clients)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        bare, bare_port, bodies_file = start_bare(bodies, sys.executable)
        try:
            bare_run = drive(bare_port, feed, args.requests, args.clients)
        finally:
            stop(bare)
            bodies_file.unlink()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"getFeedSkeleton top-1h ({args.posts} posts cached, limit {LIMIT}, a first page then "
          f"{PAGES_PER_VISIT - 1} by cursor), {args.clients} concurrent clients")
    rates = {}
    for name, run in (("manage.py serve", (elapsed, latencies, errors)), ("bare app", bare_run)):
        rates[name] = len(run[1]) / run[0]
        report(name, *run)
    print(f"  Skyline at {rates['manage.py serve'] / rates['bare app']:.0%} of the bare app's requests/s")


def report(name, elapsed, latencies, errors):
    def percentile(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    print(f"  {name}: {len(latencies)} answers in {elapsed:.2f} s: "
          f"{len(latencies) / elapsed:,.0f} requests/s, {len(errors)} errors")
    print(f"    latency p50 {percentile(0.50):.2f} ms, p90 {percentile(0.90):.2f} ms, "
          f"p99 {percentile(0.99):.2f} ms, max {latencies[-1] * 1000:.2f} ms")
    if errors:
        print(f"    first error: {errors[0]}")


if __name__ == "__main__":
    main()
