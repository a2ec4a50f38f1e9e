"""The production stack: the compose file validates and names every role with real commands."""

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose_command():
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return [shutil.which("docker-compose") or "docker-compose"]


def test_docker_compose_config_validates_the_compose_file():
    result = subprocess.run(compose_command() + ["-f", "compose.yaml", "config"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
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


def test_the_gunicorn_config_is_valid_for_gunicorn(tmp_path):
    result = subprocess.run(
        [str(ROOT / ".venv/bin/gunicorn"), "--config", "skyline/gunicorn.conf.py", "--check-config", "skyline.wsgi"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "SKYLINE_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
