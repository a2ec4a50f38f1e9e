"""`manage.py import_seed`: a generated bsky-experiments database, imported and compared exactly."""

import datetime
import json
import random
from collections import defaultdict
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import ActorLabel, APIKey, key_lookup
from apps.indexer.cursor import cursor_store
from apps.search.stats import compute_stats
from apps.seed_import.importer import SeedImportError, parse_progress
from apps.seed_import.source import Source
from tests.support.feed_fixtures import post
from tests.support.stores import BOTH_STORES, query

pytestmark = [pytest.mark.django_db(databases=BOTH_STORES), pytest.mark.usefixtures("fresh_cache")]

OLD = "seed_old"
UTC = datetime.timezone.utc

# The seed's tables (reference/seed-system.md §5) as its migrations left them, with its daily
# stats views. daily_stats_backfill is not in its migrations: shaped as its /stats query reads it.
SEED_DDL = [
    f"""CREATE TABLE {OLD}.repo_records (
        repo String, collection LowCardinality(String), rkey String,
        operation Enum8('create' = 1, 'update' = 2, 'delete' = 3), record_json String,
        created_at DateTime64(6), indexed_at DateTime64(6) DEFAULT now64(6), time_us Int64,
        INDEX idx_repo repo TYPE bloom_filter GRANULARITY 4,
        INDEX idx_collection collection TYPE bloom_filter GRANULARITY 4,
        INDEX idx_created_at created_at TYPE minmax GRANULARITY 1
    ) ENGINE = ReplacingMergeTree(time_us) PARTITION BY toYYYYMM(created_at)
    ORDER BY (collection, repo, rkey, operation)""",
    f"""CREATE TABLE {OLD}.posts (
        did String, rkey String, uri String, created_at DateTime64(6),
        indexed_at DateTime64(6) DEFAULT now64(6), text String, langs Array(String), has_embedded_media UInt8,
        parent_uri String, root_uri String, deleted UInt8 DEFAULT 0, time_us Int64,
        INDEX idx_did did TYPE bloom_filter GRANULARITY 4, INDEX idx_uri uri TYPE bloom_filter GRANULARITY 4
    ) ENGINE = ReplacingMergeTree(time_us, deleted) PARTITION BY toYYYYMM(created_at) ORDER BY (did, rkey)""",
    *[
        f"""CREATE TABLE {OLD}.{table} (
            actor_did String, subject_uri String, subject_did String, subject_collection String,
            subject_rkey String, rkey String, created_at DateTime64(6), indexed_at DateTime64(6) DEFAULT now64(6),
            deleted UInt8 DEFAULT 0, time_us Int64
        ) ENGINE = ReplacingMergeTree(time_us, deleted) PARTITION BY toYYYYMM(created_at)
        ORDER BY (subject_did, subject_collection, subject_rkey, actor_did, rkey)"""
        for table in ("likes", "reposts")
    ],
    *[
        f"""CREATE TABLE {OLD}.{table} (
            actor_did String, target_did String, rkey String, created_at DateTime64(6),
            indexed_at DateTime64(6) DEFAULT now64(6), deleted UInt8 DEFAULT 0, time_us Int64
        ) ENGINE = ReplacingMergeTree(time_us, deleted) PARTITION BY toYYYYMM(created_at)
        ORDER BY (actor_did, target_did, rkey)"""
        for table in ("follows", "blocks")
    ],
    f"""CREATE TABLE {OLD}.actor_labels (
        actor_did String, label String, created_at DateTime64(6) DEFAULT now64(6), deleted UInt8 DEFAULT 0,
        time_us Int64
    ) ENGINE = ReplacingMergeTree(time_us, deleted) ORDER BY (actor_did, label)""",
    f"""CREATE TABLE {OLD}.api_keys (
        api_key String, auth_entity String, assigned_user String, created_at DateTime64(6) DEFAULT now64(6),
        deleted UInt8 DEFAULT 0, time_us Int64, INDEX idx_api_key api_key TYPE bloom_filter GRANULARITY 4
    ) ENGINE = ReplacingMergeTree(time_us, deleted) ORDER BY api_key""",
    f"""CREATE TABLE {OLD}.daily_stats (
        date Date, metric_type String, count SimpleAggregateFunction(sum, UInt64),
        unique_actors AggregateFunction(uniq, String), unique_targets AggregateFunction(uniq, String)
    ) ENGINE = AggregatingMergeTree ORDER BY (date, metric_type)""",
    *[
        f"""CREATE MATERIALIZED VIEW {OLD}.daily_stats_{metric} TO {OLD}.daily_stats AS
        SELECT toDate(created_at) AS date, '{metric}' AS metric_type, countIf(deleted = 0) AS count,
               uniqState(if(deleted = 0, {actor}, '')) AS unique_actors,
               uniqState(if(deleted = 0, {target}, '')) AS unique_targets
        FROM {OLD}.{metric} GROUP BY date"""
        for metric, actor, target in [("posts", "did", "''"), ("likes", "actor_did", "subject_did"),
                                      ("follows", "actor_did", "target_did"), ("blocks", "actor_did", "target_did")]
    ],
    f"""CREATE TABLE {OLD}.daily_stats_backfill (
        date Date, metric_type String, count UInt64, unique_actors UInt64, unique_targets UInt64
    ) ENGINE = MergeTree ORDER BY (date, metric_type)""",
]

COLUMNS = {
    "repo_records": ["repo", "collection", "rkey", "operation", "record_json", "created_at", "time_us"],
    "posts": ["did", "rkey", "uri", "created_at", "text", "langs", "has_embedded_media", "parent_uri", "root_uri",
              "deleted", "time_us"],
    "likes": ["actor_did", "subject_uri", "subject_did", "subject_collection", "subject_rkey", "rkey", "created_at",
              "deleted", "time_us"],
    "follows": ["actor_did", "target_did", "rkey", "created_at", "deleted", "time_us"],
}
COLUMNS["reposts"], COLUMNS["blocks"] = COLUMNS["likes"], COLUMNS["follows"]
# Each table's key in Skyline: what a tombstone carries.
KEYS = {"repo_records": ("collection", "repo", "rkey"), "posts": ("did", "rkey"), "likes": ("actor_did", "rkey"),
        "reposts": ("actor_did", "rkey"), "follows": ("actor_did", "rkey"), "blocks": ("actor_did", "rkey")}
COLLECTIONS = {"app.bsky.feed.post": "posts", "app.bsky.feed.like": "likes", "app.bsky.feed.repost": "reposts",
               "app.bsky.graph.follow": "follows", "app.bsky.graph.block": "blocks"}
DIDS = [f"did:plc:{letter * 24}" for letter in "abcdefg"]
MONTHS = [datetime.datetime(2025, 11, 3, tzinfo=UTC), datetime.datetime(2025, 12, 9, tzinfo=UTC),
          datetime.datetime(2026, 1, 14, tzinfo=UTC)]


def micros(moment):
    return int(moment.timestamp() * 1_000_000)


def day_of(time_us):
    return datetime.datetime.fromtimestamp(time_us / 1e6, UTC).date()


def seed_batches():
    """The batches of rows the seed's indexer wrote for a generated stream of commits, per table
    (§1.4): tombstones with empty subjects and targets, dated at the delete; updates only in
    repo_records; a create delivered twice; deletes of records created before indexing began."""
    rng = random.Random(17)
    rows = defaultdict(list)
    replayed, later = defaultdict(list), defaultdict(list)
    creates = []
    for month in MONTHS:
        for n in range(14):
            time_us = micros(month) + n * 7_200_000_000 + rng.randrange(1_000_000)
            did, collection = rng.choice(DIDS), rng.choice(list(COLLECTIONS))
            rkey = f"3m{month.month:02d}{n:03d}{rng.randrange(10**6):06d}"
            creates.append((time_us, did, collection, rkey))
    posts = [(did, rkey) for _, did, collection, rkey in creates if collection == "app.bsky.feed.post"]
    for time_us, did, collection, rkey in creates:
        created_us = time_us - 1_500_000
        record = {"createdAt": datetime.datetime.fromtimestamp(created_us / 1e6, UTC).isoformat()}
        table = COLLECTIONS[collection]
        if table == "posts":
            reply = f"at://{did}/app.bsky.feed.post/{posts[0][1]}" if rng.random() < 0.3 else ""
            rows[table].append((did, rkey, f"at://{did}/{collection}/{rkey}", created_us, f"text {rkey}",
                                rng.choice([["en"], ["pt", "en"], []]), rng.randrange(2), reply, reply, 0, time_us))
        elif table in ("likes", "reposts"):
            subject_did, subject_rkey = rng.choice(posts or [(DIDS[0], "3zzz")])
            subject = f"at://{subject_did}/app.bsky.feed.post/{subject_rkey}"
            record["subject"] = {"uri": subject}
            rows[table].append((did, subject, subject_did, "app.bsky.feed.post", subject_rkey, rkey, created_us,
                                0, time_us))
        else:
            target = rng.choice(DIDS)
            record["subject"] = target
            rows[table].append((did, target, rkey, created_us, 0, time_us))
        rows["repo_records"].append((did, collection, rkey, "create", json.dumps(record), time_us, time_us))
    # A create the seed received twice (a replay after a restart).
    replayed["posts"].append(rows["posts"][1])
    # About a third of the records deleted 40 days later (often in a later month partition), and
    # records the index never saw created.
    deletes = [create for create in creates if rng.random() < 0.35]
    deletes += [(micros(MONTHS[1]), DIDS[2], collection, f"3old{n}") for n, collection in enumerate(COLLECTIONS)]
    for time_us, did, collection, rkey in deletes:
        deleted_us = time_us + 40 * 86_400_000_000
        table = COLLECTIONS[collection]
        if table == "posts":
            later[table].append((did, rkey, f"at://{did}/{collection}/{rkey}", deleted_us, "", [], 0, "", "", 1,
                                deleted_us))
        elif table in ("likes", "reposts"):
            later[table].append((did, "", "", "", "", rkey, deleted_us, 1, deleted_us))
        else:
            later[table].append((did, "", rkey, deleted_us, 1, deleted_us))
        later["repo_records"].append((did, collection, rkey, "delete", "", deleted_us, deleted_us))
    # An edited post: only repo_records sees the update.
    edited_did, edited_rkey = posts[-1]
    later["repo_records"].append((edited_did, "app.bsky.feed.post", edited_rkey, "update", '{"text": "edited"}',
                                 micros(MONTHS[2]) + 99, micros(MONTHS[2]) + 99))
    return [rows, replayed, later]


def literal(value):
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(literal(item) for item in value) + "]::Array(String)"
    return str(value)


def insert(table, columns, rows):
    values = ", ".join(
        "(" + ", ".join(f"fromUnixTimestamp64Micro({value})" if column == "created_at" else literal(value)
                        for column, value in zip(columns, row)) + ")"
        for row in rows
    )
    query(f"INSERT INTO {OLD}.{table} ({', '.join(columns)}) VALUES {values}")


NOW_US = micros(datetime.datetime(2026, 2, 1, tzinfo=UTC))
MPLS_KEY = "jaz-mpls-4f1d2b"
ADMIN_KEY = "jaz-admin-99a0c"
REVOKED_KEY = "jaz-old-mpls-key"
BROKEN_KEY = "jaz-broken-key"
BACKFILL = [("2025-10-01", "posts", 100, 7), ("2025-10-01", "likes", 250, 30), ("2025-11-03", "likes", 5, 2)]


@pytest.fixture
def seed():
    """A generated bsky-experiments database beside Skyline's, as its services left it."""
    query(f"DROP DATABASE IF EXISTS {OLD}")
    query(f"CREATE DATABASE {OLD}")
    for statement in SEED_DDL:
        query(statement)
    batches = seed_batches()
    rows = defaultdict(list)
    for batch in batches:
        for table, table_rows in batch.items():
            insert(table, COLUMNS[table], table_rows)
            rows[table] += table_rows
    labels = [(DIDS[0], "mpls", 1, 0), (DIDS[1], "mpls", 2, 0), (DIDS[1], "mpls", 3, 1), (DIDS[2], "tqsp", 4, 0),
              (DIDS[2], "tqsp", 5, 1), (DIDS[2], "tqsp", NOW_US, 0), ("not-a-did", "mpls", 7, 0),
              (DIDS[3], "Not A Label!", 8, 0)]
    insert("actor_labels", ["actor_did", "label", "time_us", "deleted"], labels)
    keys = [
        (MPLS_KEY, json.dumps({"feed_alias": "mpls", "api_key": MPLS_KEY, "user_did": DIDS[4]}), DIDS[4], 0, 10),
        (ADMIN_KEY, json.dumps({"feed_alias": "", "api_key": ADMIN_KEY, "user_did": ""}), "jaz", 0, 11),
        (REVOKED_KEY, json.dumps({"feed_alias": "mpls"}), DIDS[5], 0, 12),
        (REVOKED_KEY, json.dumps({"feed_alias": "mpls"}), DIDS[5], 1, 13),
        (BROKEN_KEY, "{not json", "", 0, 14),
    ]
    insert("api_keys", ["api_key", "auth_entity", "assigned_user", "deleted", "time_us"], keys)
    insert("daily_stats_backfill", ["date", "metric_type", "count", "unique_actors", "unique_targets"],
           [row + (0,) for row in BACKFILL])
    for table in ("repo_records", "posts", "likes", "reposts", "follows", "blocks", "actor_labels", "api_keys"):
        query(f"OPTIMIZE TABLE {OLD}.{table} FINAL")
    yield rows
    query(f"DROP DATABASE IF EXISTS {OLD}")


def import_seed(*args):
    out = StringIO()
    call_command("import_seed", "--database", OLD, *args, stdout=out)
    return out.getvalue()


def expected_table(table, rows):
    """What a reader of Skyline's table sees: the newest version per Skyline key, deletes hidden."""
    columns = COLUMNS[table]
    newest = {}
    for row in rows:
        named = dict(zip(columns, row))
        key = tuple(named[column] for column in KEYS[table])
        if key not in newest or named["time_us"] > newest[key]["time_us"]:
            newest[key] = named
    live = [named for named in newest.values()
            if named.get("deleted", 0) == 0 and named.get("operation", "create") != "delete"]
    return sorted(tuple(named[column] for column in columns if column != "deleted") for named in live)


def skyline_table(table):
    columns = ", ".join(
        "toUnixTimestamp64Micro(created_at)" if column == "created_at" else
        "toString(operation)" if column == "operation" else column
        for column in COLUMNS[table] if column != "deleted"
    )
    return sorted(tuple(row) for row in query(f"SELECT {columns} FROM {table} FINAL"))


def expected_stats(rows):
    """The seed's /stats days: its views' counts (deletes count nothing but add '' as an actor) plus
    the backfill."""
    days = defaultdict(lambda: {"count": 0, "actors": set()})
    for metric, actor in [("posts", "did"), ("likes", "actor_did"), ("follows", "actor_did"),
                          ("blocks", "actor_did")]:
        for row in rows[metric]:
            named = dict(zip(COLUMNS[metric], row))
            day = days[(day_of(named["created_at"]).isoformat(), metric)]
            day["count"] += named["deleted"] == 0
            day["actors"].add(named[actor] if named["deleted"] == 0 else "")
    numbers = {key: (value["count"], len(value["actors"])) for key, value in days.items()}
    for date, metric, count, actors in BACKFILL:
        before = numbers.get((date, metric), (0, 0))
        numbers[(date, metric)] = (before[0] + count, before[1] + actors)
    names = {"posts": ("num_posts", "num_posters"), "likes": ("num_likes", "num_likers"),
             "follows": ("num_follows", "num_followers"), "blocks": ("num_blocks", "num_blockers")}
    daily = defaultdict(lambda: {name: 0 for pair in names.values() for name in pair})
    for (date, metric), (count, actors) in numbers.items():
        daily[date][names[metric][0]] = count
        daily[date][names[metric][1]] = actors
    return [{"date": date, **daily[date]} for date in sorted(daily, reverse=True)]


def test_a_dry_run_shows_what_it_would_copy_and_writes_nothing(seed):
    output = import_seed("--cursor", str(NOW_US))
    months = {table: sorted({f"{day_of(dict(zip(COLUMNS[table], row))['created_at']):%Y%m}" for row in rows})
              for table, rows in seed.items()}
    assert output.splitlines() == [
        f"Import from {OLD} (dry run, nothing is written; --apply copies)",
        *[f"  {table}: {query(f'SELECT count() FROM {OLD}.{table}')[0][0]} rows in {len(months[table])} months"
          for table in ("repo_records", "posts", "likes", "reposts", "follows", "blocks")],
        f"  daily_stats: {len(expected_stats(seed))} days",
        "  actor_labels: 4 memberships",
        "  api_keys: 3 keys",
        f"  cursor: the seed's {NOW_US}, resumed 10 s earlier",
    ]
    assert query("SELECT count() FROM posts") == [(0,)]
    assert (ActorLabel.objects.count(), APIKey.objects.count(), cursor_store().load()) == (0, 0, None)


def test_the_firehose_tables_read_exactly_as_the_seed_meant_them(seed):
    import_seed("--apply")
    for table, rows in seed.items():
        assert skyline_table(table) == expected_table(table, rows), table
    # The seed still counts the undone likes its tombstones never replaced; Skyline does not.
    (seed_likes,), = query(f"SELECT count() FROM {OLD}.likes FINAL WHERE deleted = 0")
    assert seed_likes > len(expected_table("likes", seed["likes"]))
    authors = {row[0] for table in ("posts", "likes", "reposts", "follows", "blocks") for row in seed[table]}
    assert {did for (did,) in query("SELECT did FROM known_accounts FINAL")} == authors


def test_the_stats_show_the_seeds_history(seed):
    import_seed("--apply")
    stats = compute_stats()
    expected = expected_stats(seed)
    assert stats["daily_data"] == expected
    assert stats["total_posts"] == sum(day["num_posts"] for day in expected)
    assert stats["total_likes"] == sum(day["num_likes"] for day in expected)


def test_a_day_counted_by_both_systems_adds_the_counts_and_keeps_the_larger_number_of_accounts(seed):
    import_seed("--apply")
    on_imported_day = datetime.datetime(2025, 10, 1, 12, tzinfo=UTC)
    post(DIDS[0], "skyline1", on_imported_day)
    post(DIDS[1], "skyline2", on_imported_day)
    day = next(day for day in compute_stats()["daily_data"] if day["date"] == "2025-10-01")
    assert (day["num_posts"], day["num_posters"], day["num_likes"], day["num_likers"]) == (102, 7, 250, 30)


def test_labels_and_keys_keep_working_through_the_label_api(seed, client):
    output = import_seed("--apply")
    assert f"  skipped the key sky_{key_lookup(BROKEN_KEY)}: its auth_entity is not JSON" in output
    assert BROKEN_KEY not in output
    assert "  skipped the membership 'mpls'/'not-a-did': not a label name or not a DID" in output
    assert (f"  skipped the membership 'Not A Label!'/'{DIDS[3]}': not a label name or not a DID") in output

    def members(key, label):
        return client.get(f"/feed_members?feedName={label}", headers={"X-API-Key": key})

    assert members(MPLS_KEY, "mpls").json() == {"authors": [DIDS[0]]}
    assert members(MPLS_KEY, "tqsp").status_code == 401
    assert members(ADMIN_KEY, "tqsp").json() == {"authors": [DIDS[2]]}
    assert members(REVOKED_KEY, "mpls").status_code == 401
    assert members(BROKEN_KEY, "mpls").status_code == 401
    readded = ActorLabel.objects.get(label__name="tqsp", did=DIDS[2])
    assert readded.created_at == datetime.datetime.fromtimestamp(NOW_US / 1e6, UTC)
    assert sorted(APIKey.objects.values_list("name", "label__name", "imported")) == [
        (f"imported: {DIDS[4]}", "mpls", True), ("imported: jaz", None, True),
    ]
    APIKey.objects.get(label__name="mpls").revoke()
    assert members(MPLS_KEY, "mpls").status_code == 401


def test_running_it_again_changes_nothing(seed):
    import_seed("--apply", "--cursor", str(NOW_US))
    before = {table: skyline_table(table) for table in seed}
    stats, keys = compute_stats()["daily_data"], list(APIKey.objects.values_list("lookup", "digest"))
    again = import_seed("--apply", "--cursor", str(NOW_US + 5)).splitlines()
    assert again[2].endswith(" rows in 3 months (2 already imported)")
    assert again[7:10] == [f"  daily_stats: {len(stats)} days (already imported)",
                           "  actor_labels: 4 memberships (already imported)", "  api_keys: 3 keys (already imported)"]
    # Each table's newest month is copied again: the old indexer may have written more since.
    assert [line.split(":")[0] for line in again if line.startswith("[")] == [
        "[1/6] repo_records 202602", "[2/6] posts 202601", "[3/6] likes 202601", "[4/6] reposts 202602",
        "[5/6] follows 202602", "[6/6] blocks 202602",
    ]
    assert again[-2:] == [f"cursor: Skyline's own cursor {NOW_US - 10_000_000} is kept", "Import finished"]
    assert {table: skyline_table(table) for table in seed} == before
    # Forgotten bookkeeping (a crash between a copy and its record): everything is copied again,
    # and readers see the same.
    from apps.seed_import.models import ImportedChunk

    ImportedChunk.objects.all().delete()
    import_seed("--apply")
    assert {table: skyline_table(table) for table in seed} == before
    assert compute_stats()["daily_data"] == stats
    assert list(APIKey.objects.values_list("lookup", "digest")) == keys


def test_the_cursor_is_set_where_the_seed_stopped_less_ten_seconds(seed):
    output = import_seed("--apply", "--cursor", str(NOW_US))
    assert cursor_store().load() == NOW_US - 10_000_000
    assert output.splitlines()[-2] == f"cursor: the consumer resumes at {NOW_US - 10_000_000}"


def test_the_seed_cursor_value_is_parsed_strictly():
    assert parse_progress(b'{"last_seq": 1767225600000000, "last_seq_processed_at": "2026-01-01T00:00:00Z"}') \
        == 1767225600000000
    for bad in [b"", b"1767225600000000x", b"[]", b'{"last_seq": "1767225600000000"}', b'{"last_seq": true}',
                b'{"last_seq": 0}', b'{"cursor": 1767225600000000}']:
        with pytest.raises(SeedImportError):
            parse_progress(bad)


def test_another_server_is_read_through_remote_with_quoted_arguments():
    source = Source("old", remote="10.0.0.5:9000", user="reader", password="p'w\\x")
    assert source.name == "10.0.0.5:9000/old"
    assert source.table("posts") == r"remote('10.0.0.5:9000', 'old', 'posts', 'reader', 'p\'w\\x')"
    assert source.partitions_sql("likes") == (
        r"SELECT partition_id, sum(rows) FROM remote('10.0.0.5:9000', 'system', 'parts', 'reader', 'p\'w\\x') "
        "WHERE database = 'old' AND table = 'likes' AND active GROUP BY partition_id ORDER BY partition_id"
    )
    assert Source("old`db").table("posts") == r"`old\`db`.`posts`"


def test_a_database_that_is_not_there_is_named_in_one_line():
    with pytest.raises(CommandError) as error:
        import_seed()
    assert str(error.value) == f"{OLD}: no table of bsky-experiments there"


def test_an_unreachable_remote_server_is_named_without_its_password():
    with pytest.raises(CommandError) as error:
        call_command("import_seed", "--database", "old", "--remote", "127.0.0.1:1", "--user", "reader",
                     "--password", "s3cr3t-pw", stdout=StringIO())
    message = str(error.value)
    assert message.startswith("127.0.0.1:1/old: ")
    assert "Connection refused (127.0.0.1:1)" in message
    assert "s3cr3t-pw" not in message
