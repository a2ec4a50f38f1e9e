"""`manage.py generate_events N`: write a realistic, made-up Jetstream stream as JSON lines."""

import gzip
import sys
import time

import zstandard
from django.core.management.base import BaseCommand, CommandError

from apps.indexer.generator import EventGenerator

# Three days: the trending feeds (the last hour, the last day) and the daily charts all have data.
DEFAULT_DAYS = 3.0


class Command(BaseCommand):
    help = (
        "Write N generated Jetstream events (JSON lines) to --output (.gz/.zst compressed, - for stdout), "
        f"spread over the --days (default {DEFAULT_DAYS:g}) up to now."
    )

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, help="how many events")
        parser.add_argument("--seed", type=int, default=0, help="the same seed and start give the same stream")
        parser.add_argument("--output", default="-", help="file to write (.gz or .zst to compress), - for stdout")
        parser.add_argument("--days", type=float, default=DEFAULT_DAYS, help="how much stream time the events span")
        parser.add_argument("--start-time-us", type=int,
                            help="time_us of the first event (default: --days before now, so the last is now)")

    def handle(self, *args, count, seed, output, days, start_time_us, **options):
        if count < 0:
            raise CommandError("count must not be negative")
        if days <= 0:
            raise CommandError("--days must be positive")
        span_us = days * 86_400_000_000
        if start_time_us is None:
            start_time_us = time.time_ns() // 1000 - int(span_us)
        rate = max(count, 1) / (span_us / 1_000_000)
        lines = EventGenerator(seed=seed, rate=rate, start_time_us=start_time_us).lines(count)
        if output == "-":
            _write(sys.stdout.buffer, lines)
            sys.stdout.buffer.flush()
            return
        with _open(output) as target:
            _write(target, lines)


def _open(output):
    if output.endswith(".gz"):
        return gzip.open(output, "wb", compresslevel=3)
    if output.endswith(".zst"):
        return zstandard.open(output, "wb", cctx=zstandard.ZstdCompressor(level=3))
    return open(output, "wb")


def _write(target, lines):
    # One write per line: zstandard's writer has no writelines().
    for line in lines:
        target.write(line)
