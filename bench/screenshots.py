"""Screenshots of the admin as a newcomer sees it, with headless Chromium (written to bench/out/).

    .venv/bin/python bench/screenshots.py

On a temporary data directory: migrate, generate and replay a few days of events ending now, make
an admin user, a community feed and a new API key waiting to be shown, then run `manage.py serve`
(its consumer and PLC exporter point at the internet: offline, the dashboard shows them failing)
and photograph `/`, the dashboard, a feed's preview and the API key page. Chromium gets the admin's
session cookie from a small proxy in front of the server, as it takes no cookie on its command line.
"""

import http.client
import http.server
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
EVENTS, RATE = 40_000, 0.25  # about 44 hours of stream time, ending now

SETUP = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
from apps.accounts.models import Label
from apps.feeds.models import Feed
from django.db import connections

with connections["clickhouse"].cursor() as cursor:
    cursor.execute("SELECT did FROM posts FINAL GROUP BY did ORDER BY count() DESC LIMIT 25")
    authors = [did for (did,) in cursor.fetchall()]
label = Label.objects.create(name="demo", description="the most active posters of the sample")
for did in authors:
    label.members.create(did=did, added_by="screenshots")
feed = Feed.objects.create(alias="demo", kind="label", label=label, display_name="Demo community",
                           description="Posts of the demo label's members")
rules = Feed.objects.create(alias="coffee", kind="rules", display_name="Coffee talk",
                            description="Coffee and rainy days, in English, hottest first",
                            rules={"words": ["coffee", "rain sun"], "languages": ["en"], "exclude_replies": True,
                                   "hours": 48, "order": "hot"})
user = get_user_model().objects.create_superuser("admin", "admin@example.com", "screenshots")
client = Client(SERVER_NAME="localhost")
client.force_login(user)
response = client.post("/admin/accounts/apikey/add/", {"name": "demo moderators", "label": label.pk})
print(client.cookies["sessionid"].value, feed.pk, response["Location"], rules.pk)
"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manage(env, *args, **options):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, **options)


def cookie_proxy(target_port, cookie):
    """A proxy on loopback that adds the session cookie to every request it forwards."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.forward("GET")

        def do_POST(self):
            # The rules preview is asked for by POST (the form as typed, with its CSRF token).
            self.forward("POST", self.rfile.read(int(self.headers.get("Content-Length", 0))))

        def forward(self, method, body=None):
            upstream = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
            headers = {name: value for name, value in self.headers.items() if name.lower() != "cookie"}
            # The browser's own cookies (the CSRF token the admin set) go along with the admin's session.
            headers["Cookie"] = "; ".join(filter(None, [self.headers.get("Cookie"), f"sessionid={cookie}"]))
            upstream.request(method, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            body = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def screenshot(url, name, height=1800):
    profile = tempfile.mkdtemp()
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
         f"--screenshot={OUT / name}", f"--window-size=1400,{height}", "--virtual-time-budget=3000", url],
        check=True, capture_output=True, timeout=120,
    )
    print("wrote", OUT / name)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    data = tempfile.mkdtemp(prefix="skyline-screens-")
    env = {**os.environ, "SKYLINE_DATA_DIR": data, "LOG_FORMAT": "text", "DJANGO_SETTINGS_MODULE": "skyline.settings"}
    manage(env, "migrate", "--noinput", capture_output=True)
    manage(env, "migrate", "--database", "clickhouse", "--noinput", capture_output=True)
    events = Path(data) / "events.jsonl"
    start = int((time.time() - EVENTS / RATE) * 1_000_000)
    manage(env, "generate_events", str(EVENTS), "--seed", "1", "--rate", str(RATE),
           "--start-time-us", str(start), "--output", str(events))
    manage(env, "consume_firehose", "--replay", str(events))
    made = subprocess.run([sys.executable, "-c", SETUP], cwd=ROOT, env=env, capture_output=True, text=True)
    if made.returncode:
        sys.exit(made.stderr)
    cookie, feed_pk, key_page, rules_pk = made.stdout.split()
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}"], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        time.sleep(8)  # let the consumer and the PLC exporter try (and fail) to connect a few times
        proxy = cookie_proxy(port, cookie)
        base = f"http://127.0.0.1:{proxy.server_address[1]}"
        screenshot(f"{base}{key_page}", "apikey.png", height=700)
        screenshot(f"{base}/", "home.png", height=1100)
        screenshot(f"{base}/admin/", "dashboard.png", height=2600)
        screenshot(f"{base}/admin/feeds/feed/", "feeds.png", height=700)
        screenshot(f"{base}/admin/feeds/feed/{feed_pk}/change/", "feed-preview.png", height=2400)
        screenshot(f"{base}/api/admin/docs", "api-docs.png", height=1000)
        screenshot(f"{base}/admin/feeds/feed/{rules_pk}/change/", "rules-feed.png", height=5600)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    (OUT / "serve.log").write_bytes(output)
    print("server log:", OUT / "serve.log")


if __name__ == "__main__":
    main()
