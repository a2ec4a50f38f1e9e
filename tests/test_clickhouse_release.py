"""The ClickHouse the compose files run is the release the tests run on: chDB's engine.

README ("Running in production") states the supported range: the release line (year.month) of
chDB's engine, any patch release of it. A chDB upgrade to a new line fails here until the
compose files follow it, so production never runs an engine no test has seen.
"""

import re
from pathlib import Path

import pytest
import yaml

from tests.support.stores import BOTH_STORES, query

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILES = ["compose.yaml", "compose.cluster.yaml"]
CLICKHOUSE_IMAGE = re.compile(r"clickhouse/clickhouse-(server|keeper):(?P<tag>.+)")


def release_line(version):
    """(year, month) of a ClickHouse version or image tag such as 26.9.2.1 or 26.9."""
    match = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)*", version)
    assert match, f"{version!r} is not a ClickHouse release"
    return int(match[1]), int(match[2])


def pinned_images():
    for name in COMPOSE_FILES:
        for service, spec in yaml.safe_load((ROOT / name).read_text())["services"].items():
            match = CLICKHOUSE_IMAGE.fullmatch(spec.get("image", ""))
            if match:
                yield name, service, match["tag"]


@pytest.mark.django_db(databases=BOTH_STORES)
def test_the_compose_files_run_the_release_line_of_chdbs_engine():
    [(engine,)] = query("SELECT version()")
    images = list(pinned_images())
    assert {(name, service) for name, service, _ in images} >= {
        ("compose.yaml", "clickhouse"), ("compose.cluster.yaml", "clickhouse-s1r1"),
        ("compose.cluster.yaml", "keeper1"),
    }
    for name, service, tag in images:
        assert release_line(tag) == release_line(engine), (
            f"{name} {service} runs ClickHouse {tag}, the tests run on {engine}: move the pin (and README) together"
        )


def test_release_lines_compare_year_and_month_only():
    assert release_line("26.9.2.1") == release_line("26.9") == (26, 9)
    assert release_line("26.10") != release_line("26.9")
