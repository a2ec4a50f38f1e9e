"""`manage.py generate_events N`: write a realistic, made-up Jetstream stream as JSON lines."""

import gzip
import sys

import zstandard
from django.core.management.base import BaseCommand, CommandError

from apps.indexer.generator import EventGenerator


class Command(BaseCommand):
    help = "Write N generated Jetstream events (JSON lines) to --output (.gz/.zst compressed, - for stdout)."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, help="how many events")
        parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same stream")
        parser.add_argument("--output", default="-", help="file to write (.gz or .zst to compress), - for stdout")
        parser.add_argument("--start-time-us", type=int, help="time_us of the first event (default: fixed)")
        parser.add_argument("--rate", type=float, default=350.0, help="events per second of stream time")

    def handle(self, *args, count, seed, output, start_time_us, rate, **options):
        if count < 0:
            raise CommandError("count must not be negative")
        if rate <= 0:
            raise CommandError("--rate must be positive")
        extra = {"start_time_us": start_time_us} if start_time_us is not None else {}
        lines = EventGenerator(seed=seed, rate=rate, **extra).lines(count)
        if output == "-":
            sys.stdout.buffer.writelines(lines)
            sys.stdout.buffer.flush()
            return
        if output.endswith(".gz"):
            target = gzip.open(output, "wb", compresslevel=3)
        elif output.endswith(".zst"):
            target = zstandard.ZstdCompressor(level=3).stream_writer(open(output, "wb"))
        else:
            target = open(output, "wb")
        with target:
            target.writelines(lines)
