import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connections

from tests.support.servers import PlcDirectory

BOTH_STORES = ["default", "clickhouse"]


def query(sql, params=None):
    """Rows of one statement on the ClickHouse test database."""
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.fixture(autouse=True)
def empty_redis():
    """With REDIS_URL (`make test-services`) each test starts on an empty Redis, as on an empty
    database: the cache, the cursors and the task queues live there and would outlast the test."""
    if settings.REDIS_URL:
        redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture
def plc(settings):
    """A PLC directory (and handle resolver) on loopback that Skyline is pointed at."""
    with PlcDirectory() as directory:
        settings.PLC_URL = directory.url
        settings.HANDLE_RESOLVER_URL = directory.url
        cache.clear()
        yield directory
    cache.clear()


@pytest.fixture
def fresh_cache():
    """An empty Django cache before and after the test: keys, rate limits and figures are cached there."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def unpaced_repo_checkouts(monkeypatch):
    """Repo checkouts (/repo/{did}, /list/members) without the one-per-2-s pacing, for fast tests."""
    from apps.search import lists
    from skyline.atproto.ratelimit import RateLimiter

    monkeypatch.setattr(lists, "REPO_CHECKOUTS", RateLimiter(1000))
