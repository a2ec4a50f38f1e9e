"""`manage.py serve`: all of Skyline in one process, on a data directory of its own.

The web app answers while the consumer indexes a loopback Jetstream stream and the PLC exporter
copies a loopback directory's log, a community feed shows the new posts within seconds, and
SIGTERM stops it all with exit code 0 and nothing lost.
"""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from tests.support.jetstream import JetstreamServer
from tests.support.plc_export import PlcExport, plc_operation

ROOT = Path(__file__).resolve().parent.parent
MEMBER = "did:plc:servememberaaaaaaaaaaaaa"
STRANGER = "did:plc:servestrangeraaaaaaaaaaa"
FEED = "at://did:web:localhost%3A8000/app.bsky.feed.generator/serve-test"

SETUP = f"""
from apps.accounts.models import ActorLabel, Label
from apps.feeds.models import Feed
label = Label.objects.create(name="servers")
ActorLabel.objects.create(label=label, did="{MEMBER}")
Feed.objects.create(alias="serve-test", kind="label", label=label, display_name="Serve test",
                    parameters={{"refresh_seconds": 10}})
"""

READ_STORED = """
import json
from django.db import connections
with connections["clickhouse"].cursor() as cursor:
    cursor.execute("SELECT rkey FROM posts FINAL ORDER BY rkey")
    posts = [rkey for (rkey,) in cursor.fetchall()]
    cursor.execute("SELECT did, handle FROM plc_did_state FINAL ORDER BY did")
    print(json.dumps({"posts": posts, "plc": cursor.fetchall()}))
"""


def post_event(did, rkey, time_us):
    return orjson.dumps({
        "did": did, "time_us": time_us, "kind": "commit",
        "commit": {"rev": rkey, "operation": "create", "collection": "app.bsky.feed.post", "rkey": rkey,
                   "cid": "bafyreib2rxk3rh6kzwq", "record": {
                       "$type": "app.bsky.feed.post", "text": f"post {rkey}", "langs": ["en"],
                       "createdAt": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())}},
    })


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manage(env, *args, **kwargs):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=600,
                          capture_output=True, text=True, **kwargs)


def saved_cursor(data_dir):
    with sqlite3.connect(data_dir / "skyline.sqlite3") as db:
        row = db.execute("SELECT time_us FROM indexer_firehose_cursor WHERE name = 'jetstream'").fetchone()
    return row[0] if row else None


def wait_until(predicate, what, timeout=300.0):
    """Generous: the timeout only bounds a hang, and a busy machine makes a whole server slow to start."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def feed_posts(base_url):
    try:
        response = httpx.get(f"{base_url}/xrpc/app.bsky.feed.getFeedSkeleton", params={"feed": FEED}, timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return [item["post"] for item in response.json()["feed"]]


def test_serve_indexes_serves_feeds_and_stops_cleanly_on_sigterm(tmp_path):
    now = int(time.time() * 1_000_000)
    member_rkeys = [f"3lserve{i:06d}" for i in range(20)]
    lines = [post_event(MEMBER, rkey, now + i) for i, rkey in enumerate(member_rkeys)]
    lines += [post_event(STRANGER, f"3lother{i:06d}", now + 100 + i) for i in range(10)]
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with JetstreamServer(lines, pace=200) as jetstream, PlcExport() as directory:
        directory.add(MEMBER, plc_operation("member.test", "https://pds.example"), seconds=1)
        directory.add(STRANGER, plc_operation("stranger.test", "https://pds.example"), seconds=2)
        env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path), "JETSTREAM_URL": jetstream.url,
               "PLC_URL": directory.url, "JETSTREAM_FLUSH_SECONDS": "0.2", "LOG_FORMAT": "text"}
        manage(env, "migrate", "-v0")
        manage(env, "migrate", "--database", "clickhouse", "-v0")
        manage(env, "shell", "--no-imports", "-c", SETUP)

        server = subprocess.Popen([sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            expected = sorted(f"at://{MEMBER}/app.bsky.feed.post/{rkey}" for rkey in member_rkeys)
            wait_until(lambda: sorted(feed_posts(base_url) or []) == expected, "the feed to show the posts")
            shown = feed_posts(base_url)
            # Newest first, and only the label's member.
            assert shown == sorted(expected, reverse=True)
            assert httpx.get(f"{base_url}/readyz", timeout=5).json()["status"] == "ok"

            # Sent is not read: the saved cursor says when the consumer has written the whole stream.
            wait_until(lambda: saved_cursor(tmp_path) == now + 109, "the stream to be written")
            server.send_signal(signal.SIGTERM)
            output, _ = server.communicate(timeout=300)
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    assert server.returncode == 0, output
    # The access log leaves out answered feed requests (the metrics count them) but not the rest.
    assert '"GET /readyz HTTP/1.1" 200' in output
    assert not [line for line in output.splitlines() if "getFeedSkeleton" in line and '" 200 ' in line]

    stored = json.loads(manage(env, "shell", "--no-imports", "-c", READ_STORED).stdout)
    assert stored["posts"] == sorted(member_rkeys + [f"3lother{i:06d}" for i in range(10)])
    assert stored["plc"] == [[MEMBER, "member.test"], [STRANGER, "stranger.test"]]
    assert saved_cursor(tmp_path) == now + 109
