"""The one jittered exponential backoff: for reconnecting to a stream, retrying a directory, or a
write the store refused for now. (Celery's tasks use Celery's own, configured in skyline/celery.py.)"""

import random


class Backoff:
    """Exponential delays with jitter: half the delay fixed, half random, so clients spread out.

    The n-th delay (from 0) is between d/2 and d, where d = min(cap, base * 2**n); reset() starts over.
    """

    def __init__(self, base=0.5, cap=30.0):
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next_delay(self):
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return delay / 2 + random.uniform(0, delay / 2)

    def reset(self):
        self.attempt = 0
