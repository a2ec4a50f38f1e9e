"""The production stack: the compose file follows the Compose specification (and `docker compose config`
where Docker Compose is installed) and names every role with real commands."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose_command():
    """`docker compose` or `docker-compose`, whichever is installed; None without either."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def assert_the_production_stack(config):
    services = config["services"]
    assert set(services) == {
        "clickhouse", "redis", "postgres", "migrate", "web", "consumer", "plc-export", "worker", "beat",
    }
    assert services["clickhouse"]["image"] == "clickhouse/clickhouse-server:26.9"
    for role in ("web", "consumer", "plc-export", "worker", "beat"):
        assert services[role]["environment"]["CLICKHOUSE_URL"].startswith("clickhouse://")
        assert services[role]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for store in ("clickhouse", "redis", "postgres", "web"):
        assert "healthcheck" in services[store]


def test_the_compose_file_follows_the_compose_specification():
    # The specification's JSON schema, as check-jsonschema ships it: no Docker needed.
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_the_production_stack(yaml.safe_load((ROOT / "compose.yaml").read_text()))


def test_docker_compose_config_validates_the_compose_file():
    command = compose_command()
    if command is None:
        pytest.skip("Docker Compose is not installed: compose.yaml is checked against the specification only")
    result = subprocess.run(command + ["-f", "compose.yaml", "config"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert_the_production_stack(yaml.safe_load(result.stdout))


def test_the_gunicorn_config_is_valid_for_gunicorn(tmp_path):
    result = subprocess.run(
        [str(ROOT / ".venv/bin/gunicorn"), "--config", "skyline/gunicorn.conf.py", "--check-config", "skyline.wsgi"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "SKYLINE_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
