"""Settings come from the environment once; a bad value stops start-up with one line naming it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from skyline.env import Environment, clickhouse_server, service_did

ROOT = Path(__file__).resolve().parent.parent


def run_check(tmp_path, **variables):
    env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path), **variables}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("DEBUG", "maybe", "skyline: DEBUG must be true or false (1/0, yes/no), not 'maybe'"),
        ("JETSTREAM_URL", "http://jetstream.example/subscribe",
         "skyline: JETSTREAM_URL must be a URL starting with ws://, wss:// and naming a host, "
         "not 'http://jetstream.example/subscribe'"),
        ("CLICKHOUSE_URL", "mysql://u:hunter2@db/x",
         "skyline: CLICKHOUSE_URL must be a URL starting with clickhouse://, clickhouses:// and naming a host, "
         "not 'mysql://u:***@db/x'"),
        ("CLICKHOUSE_URL", "clickhouse://u:hunter2@db:notaport/x",
         "skyline: CLICKHOUSE_URL has a port that is not a number from 0 to 65535: "
         "'clickhouse://u:***@db:notaport/x'"),
        ("CLICKHOUSE_CLUSTER", "skyline", "skyline: CLICKHOUSE_CLUSTER needs CLICKHOUSE_URL (a server of the cluster)"),
        ("JETSTREAM_REWIND_SECONDS", "nan", "skyline: JETSTREAM_REWIND_SECONDS must be a number, not 'nan'"),
        ("FEED_ACTOR_DID", "alice.bsky.social",
         "skyline: FEED_ACTOR_DID must be a did:plc: or did:web: identifier, not 'alice.bsky.social'"),
        ("SKYLINE_BIND", "8001", "skyline: SKYLINE_BIND must be HOST:PORT, e.g. 127.0.0.1:8001, not '8001'"),
        ("SKYLINE_BIND", "127.0.0.1:70000",
         "skyline: SKYLINE_BIND must be HOST:PORT, e.g. 127.0.0.1:8001, not '127.0.0.1:70000'"),
        ("CSRF_TRUSTED_ORIGINS", "https://admin.example.com,admin2.example.com",
         "skyline: CSRF_TRUSTED_ORIGINS must be comma-separated origins like https://admin.example.com, "
         "not 'admin2.example.com'"),
        ("CSRF_TRUSTED_ORIGINS", "https://admin.example.com/admin/",
         "skyline: CSRF_TRUSTED_ORIGINS must be comma-separated origins like https://admin.example.com, "
         "not 'https://admin.example.com/admin/'"),
    ],
)
def test_a_bad_value_names_the_variable_in_one_line(tmp_path, variable, value, message):
    result = run_check(tmp_path, **{variable: value})
    assert result.returncode == 1
    assert result.stderr.strip() == message


def test_no_settings_at_all_is_a_working_embedded_install(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_the_generated_secret_key_is_kept_across_starts(tmp_path):
    show = [sys.executable, "manage.py", "shell", "--no-imports", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"]
    env = {"PATH": os.environ["PATH"], "SKYLINE_DATA_DIR": str(tmp_path)}
    first = subprocess.run(show, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    second = subprocess.run(show, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert first == second and len(first.strip()) > 40


def test_readers_parse_and_reject():
    env = Environment({"N": "12", "B": "yes", "L": "a, b,,c", "BAD": "x"})
    assert env.int("N", 0) == 12
    assert env.int("MISSING", 7) == 7
    assert env.bool("B") is True
    assert env.list("L") == ["a", "b", "c"]
    with pytest.raises(ImproperlyConfigured, match="^BAD must be a whole number, not 'x'$"):
        env.int("BAD", 0)
    with pytest.raises(ImproperlyConfigured, match="^N must be at least 20, not 12$"):
        env.int("N", 0, minimum=20)


def test_service_did_follows_the_endpoint_host():
    assert service_did("https://feeds.example.com") == "did:web:feeds.example.com"
    assert service_did("http://localhost:8000") == "did:web:localhost%3A8000"


def test_clickhouse_url_becomes_a_server_database():
    db = clickhouse_server("clickhouse://skyline:p%40ss%2Fword@ch.internal:9001/firehose")
    assert (db["ENGINE"], db["HOST"], db["PORT"], db["NAME"], db["USER"], db["PASSWORD"]) == (
        "skyline.db.clickhouse", "ch.internal", 9001, "firehose", "skyline", "p@ss/word")


def test_file_urls_need_no_host():
    env = Environment({"DATABASE_URL": "sqlite:////var/lib/skyline/db.sqlite3"})
    assert env.url("DATABASE_URL", "", ("postgres", "sqlite")) == "sqlite:////var/lib/skyline/db.sqlite3"
