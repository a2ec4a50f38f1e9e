import pytest
import redis
from django.conf import settings
from django.core.cache import cache

# The support modules' fixtures, registered once for every test (a test module imports no fixture).
pytest_plugins = ["tests.support.stores", "tests.support.servers", "tests.support.feed_fixtures"]


@pytest.fixture(autouse=True)
def empty_redis():
    """With REDIS_URL (`make test-services`) each test starts on an empty Redis, as on an empty
    database: the cache, the cursors and the task queues live there and would outlast the test."""
    if settings.REDIS_URL:
        redis.Redis.from_url(settings.REDIS_URL).flushdb()


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
