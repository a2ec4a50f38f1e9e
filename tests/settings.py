"""Test settings: Skyline's own, on a fresh temporary data directory (never the developer's ./var)."""

import os
import tempfile

os.environ["SKYLINE_DATA_DIR"] = tempfile.mkdtemp(prefix="skyline-test-")

from skyline.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OUTBOUND_ALLOW_PRIVATE = True  # the tests' PDSes and did:web hosts are loopback stand-ins
# No worker runs beside the suite: tasks run where they are sent, with Redis as broker or not
# (test_celery runs a real worker through the Redis broker).
CELERY_TASK_ALWAYS_EAGER = True
