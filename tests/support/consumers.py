"""A Jetstream consumer run on a thread of its own, and waiting for what it does, for the consumer tests."""

import threading
import time

from django.db import connections

from apps.indexer.consumer import Consumer
from skyline.backoff import Backoff

# Quick flushes and reconnects, so a test waits for the consumer's work, not its timers.
FAST = {"flush_seconds": 0.05, "backoff": Backoff(base=0.01, cap=0.05)}


# Generous: a timeout only bounds a hang, and chDB writes are slow on a busy machine.
def wait_until(predicate, timeout=300.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class ConsumerThread:
    """`consumer` run on a thread of its own; `error` is what its run() raised. Leaving the with-block
    (or `stop()`) stops and joins it and raises that error."""

    def __init__(self, consumer):
        self.consumer = consumer
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        try:
            self.consumer.run()
        except Exception as exc:  # surfaced by stop()
            self.error = exc
        finally:
            connections.close_all()

    def written_through(self, time_us):
        writer = self.consumer.writer
        return writer is not None and writer.written_time_us is not None and writer.written_time_us >= time_us

    def stop(self):
        self.consumer.stop()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive()
        if self.error:
            raise self.error

    __enter__ = start

    def __exit__(self, *exc_info):
        self.stop()


def following(**options):
    """A consumer of a live stream with FAST timers (and `options`), not yet started."""
    return ConsumerThread(Consumer(**{**FAST, **options}))
