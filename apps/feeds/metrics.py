"""Prometheus metrics per feed: getFeedSkeleton answers, their latency, and distinct signed-in viewers.

`observe` runs once per answer on the hot path, so it is O(1): one dict lookup, a counter, a
histogram and one HyperLogLog register. The feed label is a served alias (operators configure
the feeds); past MAX_FEEDS distinct aliases in a process the rest count as `other`, so the number
of series stays bounded whatever happens to the feed list.
"""

import math
import threading
import time
from hashlib import blake2b

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

MAX_FEEDS = 200
OTHER = "other"

REQUESTS = Counter("skyline_feed_requests_total", "getFeedSkeleton answers, by feed.", ["feed"])
LATENCY = Histogram(
    "skyline_feed_request_duration_seconds", "Time to answer getFeedSkeleton, by feed.", ["feed"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


class DistinctCounter:
    """About how many distinct values were added in the last `window` seconds.

    A HyperLogLog of 1024 registers (1 KiB, about 3% off at scale, exact-ish when small) per
    sub-window; the window slides by `window / slots` and `count` merges the live sub-windows.
    """

    BITS = 10
    SIZE = 1 << BITS
    REST = (1 << (64 - BITS)) - 1  # the hash bits after the register index

    def __init__(self, window=3600, slots=12, clock=time.monotonic):
        self.slot_seconds = window / slots
        self.slots = slots
        self.clock = clock
        self._registers = [bytearray(self.SIZE) for _ in range(slots)]
        self._epochs = [-1] * slots
        self._lock = threading.Lock()

    def _current(self):
        epoch = int(self.clock() // self.slot_seconds)
        slot = epoch % self.slots
        if self._epochs[slot] != epoch:
            with self._lock:
                if self._epochs[slot] != epoch:
                    self._registers[slot] = bytearray(self.SIZE)
                    self._epochs[slot] = epoch
        return self._registers[slot]

    def add(self, value):
        # A fixed hash (not Python's salted one), so a count is the same in every process and run.
        hashed = int.from_bytes(blake2b(value.encode(), digest_size=8).digest(), "big")
        index, rest = hashed >> (64 - self.BITS), hashed & self.REST
        rank = 64 - self.BITS - rest.bit_length() + 1
        registers = self._current()
        if registers[index] < rank:
            registers[index] = rank

    def count(self):
        oldest = int(self.clock() // self.slot_seconds) - self.slots + 1
        live = [registers for registers, epoch in zip(self._registers, self._epochs) if epoch >= oldest]
        merged = [max(values) for values in zip(*live)] if live else [0] * self.SIZE
        size = self.SIZE
        estimate = 0.7213 / (1 + 1.079 / size) * size * size / sum(2.0 ** -value for value in merged)
        empty = merged.count(0)
        if estimate <= 2.5 * size and empty:
            estimate = size * math.log(size / empty)  # linear counting: better for small counts
        return round(estimate)


class _Feed:
    __slots__ = ("requests", "latency", "viewers")

    def __init__(self, label):
        self.requests = REQUESTS.labels(label)
        self.latency = LATENCY.labels(label)
        self.viewers = DistinctCounter()


_feeds = {}
_feeds_lock = threading.Lock()


def _feed(alias):
    feed = _feeds.get(alias)
    if feed is None:
        with _feeds_lock:
            label = alias if len(_feeds) < MAX_FEEDS else OTHER
            feed = _feeds.get(label) or _Feed(label)
            _feeds[label] = feed
    return feed


def observe(alias, viewer, seconds):
    """Count one getFeedSkeleton answer of feed `alias` for `viewer` (a DID, or None), taking `seconds`."""
    feed = _feed(alias)
    feed.requests.inc()
    feed.latency.observe(seconds)
    if viewer:
        feed.viewers.add(viewer)


class _ViewersCollector:
    def collect(self):
        family = GaugeMetricFamily(
            "skyline_feed_viewers",
            "Distinct signed-in viewers in the last hour, by feed (this process; HyperLogLog, about 3% off).",
            labels=["feed"],
        )
        for label, feed in list(_feeds.items()):
            family.add_metric([label], feed.viewers.count())
        yield family


REGISTRY.register(_ViewersCollector())
