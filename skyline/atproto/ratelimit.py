"""Rate limits: evenly spaced outgoing calls, and failed attempts counted per caller."""

import hashlib
import threading
import time

from django.core.cache import cache


class RateLimiter:
    """Evenly spaced, no bursts, shared by the threads of a process."""

    def __init__(self, per_second):
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, timeout=None):
        """Block until the next call may go; False (without waiting) if that is more than `timeout` away."""
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            if timeout is not None and at - now > timeout:
                return False
            self._next = at + self.interval
        if at > now:
            time.sleep(at - now)
        return True


class FailureLimit:
    """At most `limit` failures per key in `window` seconds, counted in the shared cache (so every
    process of the site counts together); the window starts at a key's first failure."""

    def __init__(self, name, limit, window):
        self.name = name
        self.limit = limit
        self.window = window

    def _key(self, key):
        # Keys come from clients (an email, an address): hashed, they are safe cache keys of one length.
        return f"{self.name}:{hashlib.sha256(key.encode('utf-8', 'replace')).hexdigest()}"

    def exceeded(self, key):
        return (cache.get(self._key(key)) or 0) >= self.limit

    def count(self, key):
        cache_key = self._key(key)
        cache.add(cache_key, 0, self.window)
        try:
            cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.set(cache_key, 1, self.window)
