"""A rate limiter for outgoing calls: evenly spaced, no bursts, shared by the threads of a process."""

import threading
import time


class RateLimiter:
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
