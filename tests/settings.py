"""Test settings: Skyline's own, on a fresh temporary data directory (never the developer's ./var)."""

import os
import tempfile
import urllib.parse

os.environ["SKYLINE_DATA_DIR"] = tempfile.mkdtemp(prefix="skyline-test-")


def _redis_database_per_worker(url, worker):
    """With REDIS_URL (`make test-services`) and pytest-xdist, each worker (gw0, gw1, ...) uses its own
    Redis database, as each has its own PostgreSQL test database: tests empty Redis before they run.
    The processes a test starts inherit the environment, so they use the same database."""
    if not url or not worker.startswith("gw"):
        return url
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{1 + int(worker[2:])}"))


if os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _redis_database_per_worker(os.environ["REDIS_URL"],
                                                         os.environ.get("PYTEST_XDIST_WORKER", ""))

from skyline.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OUTBOUND_ALLOW_PRIVATE = True  # the tests' PDSes and did:web hosts are loopback stand-ins
# No worker runs beside the suite: tasks run where they are sent, with Redis as broker or not
# (test_celery runs a real worker through the Redis broker).
CELERY_TASK_ALWAYS_EAGER = True
