"""`manage.py consume_firehose`: index the Jetstream firehose (or a recording of it) into ClickHouse."""

import atexit
import logging
import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from apps.indexer.consumer import Consumer
from apps.indexer.mapper import MapperFailed
from apps.indexer.rows import is_collection_pattern
from apps.indexer.writer import WriteFailed
from skyline.metrics import serve_metrics
from skyline.roles import stopped_by_signals
from skyline.schema import require_migrated

MAX_COLLECTIONS = 100


class Command(BaseCommand):
    help = (
        "Follow Jetstream (JETSTREAM_URL) and index every event; resumes from the saved cursor. "
        "With --replay, index a recording (JSON lines, .gz or .zst, - for stdin) and exit."
    )
    # The system checks import every URL module and API (a third of the start-up); `manage.py check`,
    # migrate and the web roles run them.
    requires_system_checks = []

    def run_from_argv(self, argv):
        """As from `manage.py`: once the command has succeeded, end the process without the
        embedded store's teardown (call_command, as the tests use, returns as usual)."""
        super().run_from_argv(argv)
        _exit_written()

    def add_arguments(self, parser):
        parser.add_argument(
            "--collections",
            default="",
            help="comma-separated NSIDs or prefixes ending in .* (Jetstream wantedCollections); default all",
        )
        parser.add_argument("--cursor", type=int, help="start at this time_us instead of the saved cursor")
        parser.add_argument("--replay", metavar="PATH", help="read events from PATH instead of Jetstream")
        parser.add_argument(
            "--zstd-dictionary",
            metavar="PATH",
            default=settings.JETSTREAM_ZSTD_DICTIONARY,
            help="ask Jetstream for zstd frames made with this dictionary (instead of permessage-deflate)",
        )
        parser.add_argument(
            "--metrics-port", type=int, default=settings.METRICS_PORT or None,
            help="serve Prometheus /metrics on this port (default METRICS_PORT; none when unset)",
        )

    def handle(self, *args, collections, cursor, replay, zstd_dictionary, metrics_port, **options):
        wanted = [item.strip() for item in collections.split(",") if item.strip()]
        bad = [item for item in wanted if not is_collection_pattern(item)]
        if bad:
            raise CommandError(f"--collections: {', '.join(bad)} is not an NSID or a prefix ending in .*")
        if len(set(wanted)) > MAX_COLLECTIONS:
            raise CommandError(f"--collections: Jetstream takes at most {MAX_COLLECTIONS}")
        if cursor is not None and cursor < 0:
            raise CommandError("--cursor must be a time_us (microseconds since 1970), not negative")
        if replay and replay != "-" and not Path(replay).is_file():
            raise CommandError(f"--replay: no such file: {replay}")
        dictionary = None
        if zstd_dictionary and not replay:
            try:
                dictionary = Path(zstd_dictionary).read_bytes()
            except OSError as exc:
                raise CommandError(f"--zstd-dictionary: cannot read {zstd_dictionary}: {exc.strerror}") from None

        if metrics_port:
            serve_metrics(metrics_port)
        consumer = Consumer(
            collections=sorted(set(wanted)),
            cursor=cursor,
            replay=replay,
            zstd_dictionary=dictionary,
            progress=_progress_bar() if replay and sys.stderr.isatty() else None,
        ).start_mapping()  # a replay's mapping process starts mapping while the store starts
        try:
            # A replay keeps no cursor, so it needs only ClickHouse; following keeps one in the relational store.
            require_migrated("clickhouse") if replay else require_migrated("default", "clickhouse")
        except BaseException:
            consumer.close_mapping()
            raise
        try:
            with stopped_by_signals(consumer):
                consumer.run()
        except (WriteFailed, MapperFailed) as exc:
            raise CommandError(str(exc)) from None
        writer = consumer.writer
        rejected = sum(writer.rejects.values())
        self.stdout.write(
            f"indexed {writer.events_written - rejected} events, rejected {rejected}"
            + (f" ({', '.join(f'{reason}: {count}' for reason, count in sorted(writer.rejects.items()))})"
               if rejected else "")
            + (f"; cursor {writer.written_time_us}" if consumer.cursor is not None else "")
        )


def _progress_bar():
    """tqdm, loaded only when there is a terminal to draw its bar on."""
    from tqdm import tqdm

    return tqdm


def _exit_written():
    """End a command that has written everything: the interpreter's exit handlers run (spans,
    metrics, logs flushed), the connections close, and the process ends without unwinding chDB's
    engine, which takes from a tenth of a second to over a second and has nothing left to save (every
    insert is a finished part on disk by the time it returns; ClickHouse clears a merge cut short
    when it next starts)."""
    connections.close_all()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
