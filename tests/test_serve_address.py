"""`make run BIND=HOST:PORT`: Skyline listens there, describes itself there, and its admin signs in over
plain http; a busy address is one line."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from skyline.env import local_endpoint
from tests.support.jetstream import JetstreamServer

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_did_document(base_url, server):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[0]
        try:
            return httpx.get(f"{base_url}/.well-known/did.json", timeout=5).json()
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError(f"nothing answered at {base_url}")


def sign_in(base_url):
    with httpx.Client(base_url=base_url, timeout=10) as browser:
        browser.get("/admin/login/")
        token = browser.cookies["csrftoken"]
        form = {"username": "admin", "password": "correct horse", "csrfmiddlewaretoken": token}
        answer = browser.post("/admin/login/?next=/admin/", headers={"Origin": base_url}, data=form)
        return answer.status_code, answer.headers.get("Location"), answer.headers.get_list("Set-Cookie")


def test_make_run_listens_on_bind_and_the_service_follows_it(tmp_path):
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with JetstreamServer([]) as jetstream:
        env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path), "JETSTREAM_URL": jetstream.url,
               "PLC_EXPORT": "false", "LOG_FORMAT": "text",
               "DJANGO_SUPERUSER_USERNAME": "admin", "DJANGO_SUPERUSER_PASSWORD": "correct horse"}
        # `-o setup`: the shared environment is already set up.
        server = subprocess.Popen(["make", "-o", "setup", "run", f"BIND=127.0.0.1:{port}"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        try:
            document = wait_for_did_document(base_url, server)
            status, location, cookies = sign_in(base_url)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.communicate(timeout=60)
    assert document["id"] == f"did:web:127.0.0.1%3A{port}"
    assert document["service"] == [
        {"id": "#bsky_fg", "type": "BskyFeedGenerator", "serviceEndpoint": base_url}]
    assert (status, location) == (302, "/admin/")
    assert [cookie.split("=", 1)[0] for cookie in cookies] == ["csrftoken", "sessionid"]
    assert not any(re.search(r";\s*secure", cookie, re.IGNORECASE) for cookie in cookies)


@pytest.mark.parametrize("how", ["SKYLINE_BIND", "--bind"])
def test_a_busy_address_is_one_line(tmp_path, how):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path)}
        command = [sys.executable, "manage.py", "serve"]
        if how == "--bind":
            command += ["--bind", address]
        else:
            env["SKYLINE_BIND"] = address
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert (result.stdout, result.stderr) == ("", (
        f"CommandError: {address} is already in use by another program; stop it or choose another address "
        "(make run BIND=HOST:PORT)\n"))


def test_listening_on_every_interface_is_visited_at_localhost():
    assert local_endpoint("0.0.0.0:8001") == "http://localhost:8001"
    assert local_endpoint("[::]:8001") == "http://localhost:8001"
    assert local_endpoint("192.168.1.20:8001") == "http://192.168.1.20:8001"
