"""Production settings behind a TLS proxy: `check --deploy` is clean, the admin signs in through the
proxy, https is told apart only behind trusted proxies, and the data directory is private."""

import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
HTTPS = {"DEBUG": "false", "SERVICE_ENDPOINT": "https://feeds.example.com"}
# The admin is also reached at a second public name.
SECOND_NAME = {"ALLOWED_HOSTS": "feeds.example.com,admin.example.com",
               "CSRF_TRUSTED_ORIGINS": "https://admin.example.com"}

# Runs in a manage.py shell: each step a request through the whole middleware stack, CSRF enforced.
BROWSE = """
import json
from django.contrib.auth import get_user_model
from django.test import Client

get_user_model().objects.filter(username="admin").exists() or get_user_model().objects.create_superuser(
    "admin", "", "correct horse")

def sign_in(host, origin, **headers):
    client = Client(enforce_csrf_checks=True, HTTP_HOST=host, **headers)
    form = client.get("/admin/login/")
    token = client.cookies["csrftoken"].value
    answer = client.post("/admin/login/?next=/admin/",
                         {"username": "admin", "password": "correct horse", "csrfmiddlewaretoken": token},
                         HTTP_ORIGIN=origin, HTTP_REFERER=origin + "/admin/login/")
    return {"status": answer.status_code, "location": answer.get("Location"),
            "hsts": form.get("Strict-Transport-Security"),
            "secure_cookies": sorted(name for name, morsel in client.cookies.items() if morsel["secure"])}

plain = Client(HTTP_HOST="feeds.example.com")
proxied = {"HTTP_X_FORWARDED_PROTO": "https"}  # as the TLS proxy says of every request it passes on
page = plain.get("/admin/login/")
print(json.dumps({
    "plain_login_page": [page.status_code, page.get("Location")],
    "plain_readyz": plain.get("/readyz").status_code,
    "through_proxy": sign_in("feeds.example.com", "https://feeds.example.com", **proxied),
    "other_origin": sign_in("admin.example.com", "https://admin.example.com", **proxied),
    "foreign_origin": sign_in("feeds.example.com", "https://evil.example", **proxied),
}))
"""


def environment(data_dir, **variables):
    return {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(data_dir), "LOG_FORMAT": "text",
            "SECRET_KEY": secrets.token_urlsafe(50), **variables}


def manage(data_dir, *args, **variables):
    env = environment(data_dir, **variables)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = manage(tmp_path, "check", "--deploy", **HTTPS, TRUSTED_PROXY_COUNT="1")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.strip() == "System check identified no issues (1 silenced)."


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("deploy")
    result = manage(data_dir, "migrate", "-v0")
    assert result.returncode == 0, result.stderr
    return data_dir


def browse(data_dir, **variables):
    result = manage(data_dir, "shell", "--no-imports", "-c", BROWSE, **SECOND_NAME, **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_behind_a_trusted_proxy_the_admin_is_https_only(migrated):
    seen = browse(migrated, **HTTPS, TRUSTED_PROXY_COUNT="1")
    # Plain http is sent to https, but for the probes that ask from inside the network.
    assert seen["plain_login_page"] == [301, "https://feeds.example.com/admin/login/"]
    assert seen["plain_readyz"] == 200
    assert seen["through_proxy"] == {"status": 302, "location": "/admin/",
                                     "hsts": "max-age=31536000; includeSubDomains",
                                     "secure_cookies": ["csrftoken", "sessionid"]}
    assert seen["other_origin"]["status"] == 302
    assert seen["foreign_origin"]["status"] == 403


def test_the_scheme_header_is_ignored_without_trusted_proxies(migrated):
    seen = browse(migrated, **HTTPS)
    # No redirect (each request would look like http and loop), no HSTS on a header anyone can send;
    # the admin still signs in from the public https origin and its cookies stay Secure.
    assert seen["plain_login_page"] == [200, None]
    assert seen["through_proxy"] == {"status": 302, "location": "/admin/", "hsts": None,
                                     "secure_cookies": ["csrftoken", "sessionid"]}
    assert seen["foreign_origin"]["status"] == 403


def test_an_http_service_sets_no_secure_cookies_and_no_hsts(migrated):
    seen = browse(migrated, SERVICE_ENDPOINT="http://feeds.example.com")
    assert seen["plain_login_page"] == [200, None]
    assert seen["through_proxy"]["hsts"] is None
    assert seen["through_proxy"]["secure_cookies"] == []


@pytest.mark.parametrize("proxies, hsts", [("0", None), ("1", "max-age=31536000; includeSubDomains")])
def test_gunicorn_leaves_the_scheme_header_to_the_trusted_proxies_setting(migrated, proxies, hsts):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}",
               "--no-consumer", "--no-scheduler", "--no-plc-export"]
    env = environment(migrated, TRUSTED_PROXY_COUNT=proxies, **HTTPS)
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "serve did not answer"
            try:
                # A local peer claims https: gunicorn trusts that by default, Skyline only from its proxies.
                answer = httpx.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5,
                                   headers={"Host": "feeds.example.com", "X-Forwarded-Proto": "https"})
                break
            except httpx.HTTPError:
                time.sleep(0.3)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    assert answer.status_code == 200
    assert answer.headers.get("Strict-Transport-Security") == hsts


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_what_skyline_creates_in_the_data_directory_is_private(tmp_path):
    data_dir = tmp_path / "data"
    for database in ("default", "clickhouse"):
        result = manage(data_dir, "migrate", "--database", database, "-v0", SECRET_KEY="")
        assert result.returncode == 0, result.stderr
    assert {path.name: oct(mode(path)) for path in data_dir.iterdir()} == {
        "secret_key": "0o600", "skyline.sqlite3": "0o600", "clickhouse": "0o700", "static": "0o700",
    }
    assert oct(mode(data_dir)) == "0o700"


def test_a_data_directory_made_open_by_an_older_version_is_made_private(tmp_path):
    tmp_path.chmod(0o755)
    result = manage(tmp_path, "check")
    assert result.returncode == 0, result.stderr
    assert oct(mode(tmp_path)) == "0o700"
