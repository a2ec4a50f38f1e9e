"""`manage.py import_seed`: copy bsky-experiments' data into Skyline (a dry run unless --apply)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from apps.seed_import.importer import (
    CURSOR_REWIND_US, FIREHOSE, SeedImport, SeedImportError, import_cursor, read_redis_progress,
)
from apps.seed_import.source import Source

UNITS = {"daily_stats": "days", "actor_labels": "memberships", "api_keys": "keys"}


class Command(BaseCommand):
    help = (
        "Copy bsky-experiments' ClickHouse data (the firehose tables, daily_stats and daily_stats_backfill, "
        "actor_labels, api_keys) and its firehose cursor into Skyline. Prints what it would copy; --apply "
        "copies. Resumable: finished parts are remembered and skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", required=True, help="the old system's ClickHouse database")
        parser.add_argument("--remote", metavar="HOST:PORT",
                            help="the old ClickHouse server, when it is not Skyline's (read through remote())")
        parser.add_argument("--user", default="default", help="user on the --remote server")
        parser.add_argument("--password", default="", help="password on the --remote server")
        cursor = parser.add_mutually_exclusive_group()
        cursor.add_argument("--redis-url", help="the old system's Redis, to read its firehose cursor")
        cursor.add_argument("--cursor", type=int, help="the old system's cursor (last_seq, a Jetstream time_us)")
        parser.add_argument("--redis-key", default="indexer:progress",
                            help="the cursor's key: <REDIS_PREFIX>:progress (default indexer:progress)")
        parser.add_argument("--apply", action="store_true", help="copy (without it, only show what would be copied)")

    def handle(self, *args, database, remote, user, password, redis_url, cursor, redis_key, apply, **options):
        source = Source(database, remote=remote, user=user, password=password)
        try:
            self._import(source, redis_url, redis_key, cursor, apply)
        except SeedImportError as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            message = str(exc).replace(password, "***") if password else str(exc)
            raise CommandError(f"{source.name}: {message}") from None

    def _import(self, source, redis_url, redis_key, cursor, apply):
        seed = SeedImport(source, self.stdout.write)
        mode = "copying" if apply else "dry run, nothing is written; --apply copies"
        self.stdout.write(f"Import from {source.name} ({mode})")
        chunks = seed.plan()
        for line in self._summary(chunks):
            self.stdout.write(f"  {line}")
        missing = seed.missing_tables()
        if missing:
            self.stdout.write(f"  not in {source.name}, skipped: {', '.join(missing)}")
        if redis_url:
            cursor = read_redis_progress(redis_url, redis_key)
        if cursor is not None:
            self.stdout.write(f"  cursor: the seed's {cursor}, resumed {CURSOR_REWIND_US // 1_000_000} s earlier")
        if not apply:
            return
        seed.run(chunks)
        if cursor is not None:
            resume, kept = import_cursor(cursor)
            if resume is None:
                self.stdout.write(f"cursor: Skyline's own cursor {kept} is kept")
            else:
                self.stdout.write(f"cursor: the consumer resumes at {resume}")
        self.stdout.write("Import finished")

    def _summary(self, chunks):
        tables = dict.fromkeys(chunk.table for chunk in chunks)
        for table in tables:
            parts = [chunk for chunk in chunks if chunk.table == table]
            done = sum(chunk.done for chunk in parts)
            rows = sum(chunk.rows for chunk in parts)
            if table in FIREHOSE:
                line = f"{table}: {rows} rows in {len(parts)} months"
                yield line + (f" ({done} already imported)" if done else "")
            else:
                yield f"{table}: {rows} {UNITS[table]}" + (" (already imported)" if done else "")
