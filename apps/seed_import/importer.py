"""Copy bsky-experiments' data (the seed) into Skyline: the firehose tables, the daily statistics,
the community labels, the API keys and the firehose cursor.

The firehose tables are copied a month partition at a time. Each month is written into a staging
copy of the Skyline table and its parts are then attached to the table: attaching does not run the
materialized views, so the daily statistics are not counted a second time (they come from the seed's
own statistics), and an interrupted month leaves nothing half-copied. Copying a month again changes
nothing a reader sees (the same rows, the same versions, and ReplacingMergeTree keeps one), and each
finished month is remembered (ImportedChunk) so a second run resumes after the last one.

The seed's delete tombstones of likes, reposts, follows and blocks never replaced the rows they
deleted there (their sorting keys hold the subject, which a tombstone does not carry); Skyline's
tables are sorted by (actor, rkey), so the same rows, copied as they are, replace them here.
"""

import datetime
import json
from dataclasses import dataclass

import redis
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import connections, transaction

from apps.accounts.models import ActorLabel, APIKey, Label, key_lookup
from apps.indexer.cursor import cursor_store
from skyline.atproto.identity import is_did

from .models import ImportedChunk
from .source import quote_identifier, quote_string

# Skyline columns <- the seed's columns, per firehose table, and the column naming the account.
FIREHOSE = {
    "repo_records": (
        "repo, collection, rkey, operation, record_json, created_at, indexed_at, deleted, time_us",
        "repo, collection, rkey, toString(operation), record_json, created_at, indexed_at, "
        "toUInt8(operation = 'delete'), time_us",
        "repo",
    ),
    "posts": (
        "did, rkey, uri, created_at, indexed_at, text, langs, has_embedded_media, parent_uri, root_uri, "
        "deleted, time_us",
    ) * 2 + ("did",),
    **{
        table: (
            "actor_did, rkey, subject_uri, subject_did, subject_collection, subject_rkey, created_at, indexed_at, "
            "deleted, time_us",
        ) * 2 + ("actor_did",)
        for table in ("likes", "reposts")
    },
    **{
        table: ("actor_did, rkey, target_did, created_at, indexed_at, deleted, time_us",) * 2 + ("actor_did",)
        for table in ("follows", "blocks")
    },
}
TABLES = [*FIREHOSE, "daily_stats", "daily_stats_backfill", "actor_labels", "api_keys"]
STATS_METRICS = ("posts", "likes", "follows", "blocks")
ALL = "all"
# The seed saved the time_us of the event finished last, which can be ahead of rows it had not yet
# written (batches of up to 5 s, and a last batch lost at shutdown): resume a little earlier.
CURSOR_REWIND_US = 10_000_000


class SeedImportError(Exception):
    """The old database or a value read from it cannot be imported; the message says why."""


def parse_progress(value):
    """The Jetstream time_us in the seed's Redis cursor, `{"last_seq": <time_us>, ...}`."""
    try:
        progress = json.loads(value)
    except (TypeError, ValueError):
        raise SeedImportError("the cursor is not JSON") from None
    last_seq = progress.get("last_seq") if isinstance(progress, dict) else None
    if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq <= CURSOR_REWIND_US:
        raise SeedImportError('the cursor has no "last_seq" time in microseconds')
    return last_seq


def read_redis_progress(url, key):
    """The seed's cursor from its Redis (`<REDIS_PREFIX>:progress`)."""
    value = redis.Redis.from_url(url).get(key)
    if value is None:
        raise SeedImportError(f"Redis has no key {key!r}")
    return parse_progress(value)


@dataclass
class Chunk:
    table: str
    chunk: str
    rows: int
    done: bool


def _query(sql):
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _micros(time_us):
    return datetime.datetime.fromtimestamp(time_us / 1e6, datetime.timezone.utc)


class SeedImport:
    """One import from `source` (a source.Source); `say` prints a line of progress."""

    def __init__(self, source, say):
        self.source = source
        self.say = say
        self._tables = {name for (name,) in _query(source.tables_sql())}
        if not self._tables & set(TABLES):
            raise SeedImportError(f"{source.name}: no table of bsky-experiments there")

    def _src(self, table):
        return self.source.table(table)

    def plan(self):
        """Every chunk to copy, in order, with whether an earlier run finished it.

        A table's newest month is never finished: the old indexer may still be writing it, so each
        run copies it again (which changes nothing that was already there).
        """
        done = set(ImportedChunk.objects.filter(source=self.source.name).values_list("table", "chunk"))
        chunks = []
        for table in FIREHOSE:
            if table not in self._tables:
                continue
            partitions = _query(self.source.partitions_sql(table))
            for number, (partition, rows) in enumerate(partitions, 1):
                finished = (table, partition) in done and number < len(partitions)
                chunks.append(Chunk(table, partition, int(rows), finished))
        for table, sources in [("daily_stats", {"daily_stats", "daily_stats_backfill"}),
                               ("actor_labels", {"actor_labels"}), ("api_keys", {"api_keys"})]:
            if sources & self._tables:
                chunks.append(Chunk(table, ALL, self._total(table), (table, ALL) in done))
        return chunks

    def _total(self, table):
        """How many days of statistics, memberships or keys there are to copy."""
        sql = {
            "daily_stats": f"SELECT uniqExact(date) FROM ({self._stats_sql()})",
            "actor_labels": f"SELECT count() FROM ({self._labels_sql()})",
            "api_keys": f"SELECT count() FROM ({self._keys_sql()})",
        }[table]
        (total,), = _query(sql)
        return int(total)

    def missing_tables(self):
        return [table for table in TABLES if table not in self._tables]

    def run(self, chunks):
        """Copy the chunks not done yet, remembering each when it is finished."""
        todo = [chunk for chunk in chunks if not chunk.done]
        for number, chunk in enumerate(todo, 1):
            copy = {
                "daily_stats": self._copy_daily_stats,
                "actor_labels": self._copy_actor_labels,
                "api_keys": self._copy_api_keys,
            }.get(chunk.table, self._copy_firehose)
            detail = copy(chunk)
            ImportedChunk.objects.get_or_create(
                source=self.source.name, table=chunk.table, chunk=chunk.chunk, defaults={"rows": chunk.rows}
            )
            self.say(f"[{number}/{len(todo)}] {chunk.table} {chunk.chunk}: {detail}")

    # Firehose tables

    def _copy_firehose(self, chunk):
        columns, expressions, account = FIREHOSE[chunk.table]
        if chunk.chunk == ALL:
            where = ""
        elif chunk.chunk.isdigit() and len(chunk.chunk) == 6:
            where = f" WHERE toYYYYMM(created_at) = {int(chunk.chunk)}"
        else:
            raise SeedImportError(f"{chunk.table} is partitioned by something else than the month of created_at")
        stage = quote_identifier(f"seed_import_{chunk.table}")
        _query(f"DROP TABLE IF EXISTS {stage}")
        _query(f"CREATE TABLE {stage} AS {chunk.table}")
        try:
            _query(f"INSERT INTO {stage} ({columns}) SELECT {expressions} FROM {self._src(chunk.table)}{where}")
            parts = _query(
                "SELECT DISTINCT partition_id FROM system.parts WHERE database = currentDatabase() "
                f"AND table = {quote_string(f'seed_import_{chunk.table}')} AND active"
            )
            for (partition,) in parts:
                _query(f"ALTER TABLE {chunk.table} ATTACH PARTITION ID {quote_string(partition)} FROM {stage}")
            # The views that keep known_accounts do not run on attached parts.
            _query(f"INSERT INTO known_accounts (did) SELECT DISTINCT {account} FROM {stage}")
            (copied,), = _query(f"SELECT count() FROM {stage}")
        finally:
            _query(f"DROP TABLE IF EXISTS {stage}")
        return f"{copied} rows copied"

    # Daily statistics: what the seed's /stats showed per day, its two tables summed as it summed them.

    def _stats_sql(self):
        metrics = ", ".join(quote_string(metric) for metric in STATS_METRICS)
        parts = []
        if "daily_stats" in self._tables:
            parts.append(
                "SELECT date, metric_type, toInt64(sum(count)) AS count, toUInt64(uniqMerge(unique_actors)) AS actors "
                f"FROM {self._src('daily_stats')} WHERE metric_type IN ({metrics}) GROUP BY date, metric_type"
            )
        if "daily_stats_backfill" in self._tables:
            parts.append(
                "SELECT date, metric_type, toInt64(sum(count)), toUInt64(sum(unique_actors)) "
                f"FROM {self._src('daily_stats_backfill')} WHERE metric_type IN ({metrics}) GROUP BY date, metric_type"
            )
        return (
            f"SELECT date, metric_type, sum(count), sum(actors) FROM ({' UNION ALL '.join(parts)}) "
            "GROUP BY date, metric_type"
        )

    def _copy_daily_stats(self, chunk):
        _query(f"INSERT INTO daily_stats_imported (date, metric_type, count, actors) {self._stats_sql()}")
        return f"{self._total('daily_stats')} days of statistics copied"

    # Labels: the latest version of each (account, label) that is not deleted.

    def _labels_sql(self):
        return (
            f"SELECT label, actor_did, max(time_us) FROM {self._src('actor_labels')} "
            "GROUP BY label, actor_did HAVING argMax(deleted, time_us) = 0 ORDER BY label, actor_did"
        )

    def _label(self, name):
        try:
            validate_slug(name)
        except ValidationError:
            return None
        if len(name) > Label._meta.get_field("name").max_length:
            return None
        return Label.objects.get_or_create(name=name)[0]

    @transaction.atomic
    def _copy_actor_labels(self, chunk):
        added, skipped = 0, []
        for name, did, time_us in _query(self._labels_sql()):
            label = self._label(name)
            if label is None or not is_did(did):
                skipped.append(f"{name!r}/{did!r}")
                continue
            member, created = ActorLabel.objects.get_or_create(label=label, did=did,
                                                               defaults={"added_by": "import_seed"})
            if created:
                # When the seed last gave the label, as its member lists showed it.
                ActorLabel.objects.filter(pk=member.pk).update(created_at=_micros(time_us))
                added += 1
        for item in skipped:
            self.say(f"  skipped the membership {item}: not a label name or not a DID")
        return f"{added} memberships added"

    # API keys: the latest version of each key that is not deleted, kept working as its holder has it.

    def _keys_sql(self):
        return (
            "SELECT api_key, argMax(auth_entity, time_us), argMax(assigned_user, time_us), "
            f"min(toUnixTimestamp64Micro(created_at)) FROM {self._src('api_keys')} "
            "GROUP BY api_key HAVING argMax(deleted, time_us) = 0 ORDER BY api_key"
        )

    def _scope(self, auth_entity):
        """The label a key manages (None: every label), from its auth_entity JSON."""
        try:
            entity = json.loads(auth_entity)
        except ValueError:
            raise SeedImportError("its auth_entity is not JSON") from None
        if not isinstance(entity, dict):
            raise SeedImportError("its auth_entity is not a JSON object")
        alias = entity.get("feed_alias")
        alias = "" if alias is None else alias
        if not isinstance(alias, str):
            raise SeedImportError("its auth_entity has no feed_alias text")
        if not alias:
            return None
        label = self._label(alias)
        if label is None:
            raise SeedImportError(f"its feed_alias {alias[:64]!r} is not a label name")
        return label

    @transaction.atomic
    def _copy_api_keys(self, chunk):
        added, skipped = 0, []
        for plain, auth_entity, assigned_user, created_us in _query(self._keys_sql()):
            lookup = key_lookup(plain)
            if not lookup:
                skipped.append("a key: it is empty or a malformed sky_ key")
                continue
            try:
                label = self._scope(auth_entity)
            except SeedImportError as exc:
                skipped.append(f"the key sky_{lookup}: {exc}")
                continue
            name = f"imported: {assigned_user or (label.name if label else 'admin')}"[:100]
            key, created = APIKey.objects.import_key(plain, name, label)
            if created:
                APIKey.objects.filter(pk=key.pk).update(created_at=_micros(created_us))
                added += 1
        for item in skipped:
            self.say(f"  skipped {item}")
        return f"{added} keys added"


def import_cursor(time_us):
    """Make the consumer resume where the seed stopped, unless Skyline has a cursor of its own.

    Returns (the cursor set or None, the cursor Skyline keeps)."""
    store = cursor_store()
    current = store.load()
    if current is not None:
        return None, current
    resume = time_us - CURSOR_REWIND_US
    store.save(resume)
    return resume, resume
