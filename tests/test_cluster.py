"""Cluster mode: with CLICKHOUSE_CLUSTER set, the migrations' DDL makes a sharded, replicated schema.

The DDL checked is whatever the migrations define: the plan is collected as `migrate` would run it
(model operations and RunSQL through the schema editor, nothing executed), once for one server and
once for the cluster, so a table or view added later is checked without naming it here. chDB has
no Keeper to run Replicated engines, so its parser checks every statement instead.
"""

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import yaml
from django.db import connections, router
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython

from skyline.db.chdb.base import DatabaseWrapper
from skyline.db.cluster import ClusterTranslationError, cluster_statements
from tests.support.stores import BOTH_STORES

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = "skyline"
DATABASE = "skyline"
DID_COLUMNS = {"did", "repo", "actor_did"}

CREATE_MERGETREE = re.compile(
    r'CREATE TABLE "?(?P<name>\w+)"?(?: ON CLUSTER \w+)?\s+(?P<columns>\(.*\)) ENGINE = (?P<engine>\w*MergeTree)\((?P<args>[^)]*)\)'
    r'(?P<clauses>.*);$', re.S,
)
CREATE_VIEW = re.compile(r"CREATE (?P<kind>VIEW|MATERIALIZED VIEW) IF NOT EXISTS (?P<name>\w+) ")


def migration_plan():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    plan = []
    for leaf in sorted(loader.graph.leaf_nodes()):
        plan += [key for key in loader.graph.forwards_plan(leaf) if key not in plan]
    return loader, plan


def migrate_sql(cluster=None):
    """The statements `migrate --database clickhouse` runs from an empty database, in order."""
    settings_dict = {**connections["clickhouse"].settings_dict, "NAME": DATABASE, "CLUSTER": cluster}
    connection = DatabaseWrapper(settings_dict, alias="clickhouse")
    loader, plan = migration_plan()
    state = loader.project_state(plan[0], at_end=False)
    statements = []
    for key in plan:
        with connection.schema_editor(collect_sql=True, atomic=False) as editor:
            state = loader.graph.nodes[key].apply(state, editor, collect_sql=True)
        statements += [sql.strip() for sql in editor.collected_sql if not sql.startswith("--")]
    return statements


@pytest.fixture(scope="module")
def single():
    return migrate_sql()


@pytest.fixture(scope="module")
def clustered():
    return migrate_sql(CLUSTER)


def tables(statements):
    return {match["name"]: match for match in map(CREATE_MERGETREE.match, statements) if match}


def columns_of(clauses):
    return {name.strip('"`') for name in re.findall(r'[`"]?\b\w+\b[`"]?', clauses)}


def test_every_clickhouse_operation_can_be_written_as_sql():
    # RunPython that runs DDL on its own cursor would bypass the translation (and these checks): on a
    # cluster it would create single-node tables. Code that sends its DDL through the schema editor
    # says so with `cluster_aware`.
    loader, plan = migration_plan()
    for app_label, name in plan:
        for operation in loader.graph.nodes[app_label, name].operations:
            if isinstance(operation, RunPython) and not getattr(operation.code, "cluster_aware", False):
                assert not router.allow_migrate("clickhouse", app_label, **operation.hints), (
                    f"{app_label}.{name} runs Python on ClickHouse: use RunSQL so cluster mode can translate it"
                )


@pytest.mark.django_db(databases=BOTH_STORES)
def test_every_statement_parses_in_the_tested_engine(clustered):
    with connections["clickhouse"].cursor() as cursor:
        for statement in clustered:
            cursor.execute(f"EXPLAIN AST {statement.rstrip(';')}")
            assert cursor.fetchall(), statement[:200]


def test_every_mergetree_table_is_replicated_on_the_cluster_and_read_through_a_distributed_table(single, clustered):
    originals = tables(single)
    assert {"posts", "likes", "reposts", "follows", "blocks", "repo_records", "daily_stats"} <= set(originals)
    translated = tables(clustered)
    assert set(translated) == {f"{name}_local" for name in originals}
    for name, original in originals.items():
        local = translated[f"{name}_local"]
        assert local["engine"] == f"Replicated{original['engine']}"
        paths = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"
        assert local["args"] == ", ".join(filter(None, [paths, original["args"]]))
        assert (local["columns"], local["clauses"]) == (original["columns"], original["clauses"])
        assert local.string.startswith(f"CREATE TABLE {name}_local ON CLUSTER {CLUSTER} ")
        distributed = [sql for sql in clustered if sql.startswith(f"CREATE TABLE {name} ")]
        assert len(distributed) == 1, name
        assert distributed[0].startswith(
            f"CREATE TABLE {name} ON CLUSTER {CLUSTER} AS `{DATABASE}`.{name}_local "
            f"ENGINE = Distributed('{CLUSTER}', '{DATABASE}', '{name}_local', cityHash64("
        )


def sharding_columns(clustered, name):
    statement = next(sql for sql in clustered if sql.startswith(f"CREATE TABLE {name} ON CLUSTER"))
    return columns_of(re.search(r"cityHash64\((.*)\)\);$", statement)[1])


def test_rows_that_replace_each_other_land_on_one_shard_the_shard_of_their_account(single, clustered):
    for name, original in tables(single).items():
        sorting_key = re.search(r"ORDER BY \(([^)]*)\)", original["clauses"])[1]
        shard_by = sharding_columns(clustered, name)
        # A tombstone has the sorting key of the record it deletes: the same key, the same shard.
        assert shard_by <= columns_of(sorting_key), name
        dids = DID_COLUMNS & columns_of(sorting_key)
        if dids:
            assert len(shard_by) == 1 and shard_by <= dids, name
    assert sharding_columns(clustered, "posts") == {"did"}
    assert sharding_columns(clustered, "likes") == {"actor_did"}
    assert sharding_columns(clustered, "repo_records") == {"repo"}


def test_views_are_created_on_the_cluster_and_materialized_views_keep_to_the_local_tables(single, clustered):
    views = {match["name"]: match["kind"] for match in map(CREATE_VIEW.match, single) if match}
    assert {"recent_posts": "VIEW", "daily_stats_posts_mv": "MATERIALIZED VIEW"}.items() <= views.items()
    locals_ = set(tables(clustered))
    for name, kind in views.items():
        [statement] = [sql for sql in clustered if sql.startswith(f"CREATE {kind} IF NOT EXISTS {name} ")]
        assert statement.startswith(f"CREATE {kind} IF NOT EXISTS {name} ON CLUSTER {CLUSTER} "), name
        if kind == "MATERIALIZED VIEW":
            target = re.search(r" TO (\w+) AS", statement)[1]
            source = re.search(r"\bFROM (\w+)", statement)[1]
            assert {target, source} <= locals_, name
    assert "FROM posts FINAL" in next(sql for sql in clustered if " recent_posts " in sql)
    # A materialized view given a new query keeps to the local tables too (search 0006).
    modified = [sql for sql in clustered if " MODIFY QUERY " in sql]
    assert len(modified) >= 4
    for statement in modified:
        name = re.match(r"ALTER TABLE (\w+) ON CLUSTER \w+ MODIFY QUERY ", statement)[1]
        assert views[name] == "MATERIALIZED VIEW"
        assert re.search(r"\bFROM (\w+)", statement)[1] in locals_, name


def test_a_materialized_views_new_query_reads_the_local_table():
    statements = cluster_statements("ALTER TABLE daily_stats_likes_mv MODIFY QUERY SELECT toDate(created_at) AS date "
                                    "FROM likes WHERE deleted = 0 GROUP BY date", CLUSTER, DATABASE)
    assert statements == [f"ALTER TABLE daily_stats_likes_mv ON CLUSTER {CLUSTER} MODIFY QUERY "
                          "SELECT toDate(created_at) AS date FROM likes_local WHERE deleted = 0 GROUP BY date"]


def test_every_schema_change_runs_on_the_whole_cluster(clustered):
    for statement in clustered:
        if not statement.startswith(("INSERT INTO", "SELECT")):
            assert f" ON CLUSTER {CLUSTER}" in statement, statement[:200]


def test_column_changes_reach_the_distributed_table_and_data_changes_stay_local():
    assert cluster_statements("ALTER TABLE posts ADD COLUMN lang String", CLUSTER, DATABASE) == [
        f"ALTER TABLE posts_local ON CLUSTER {CLUSTER} ADD COLUMN lang String",
        f"ALTER TABLE posts ON CLUSTER {CLUSTER} ADD COLUMN lang String",
    ]
    assert cluster_statements("ALTER TABLE posts MATERIALIZE INDEX posts_text", CLUSTER, DATABASE) == [
        f"ALTER TABLE posts_local ON CLUSTER {CLUSTER} MATERIALIZE INDEX posts_text",
    ]
    # The analytics retention task's mutation (apps/feeds/tasks.py): Distributed tables take none.
    assert cluster_statements("ALTER TABLE feed_interactions DELETE WHERE received_at < %s", CLUSTER, DATABASE) == [
        f"ALTER TABLE feed_interactions_local ON CLUSTER {CLUSTER} DELETE WHERE received_at < %s",
    ]
    with pytest.raises(ClusterTranslationError, match="separate ALTERs"):
        cluster_statements("ALTER TABLE posts ADD COLUMN lang String, MODIFY TTL now()", CLUSTER, DATABASE)


def test_dropping_exchanging_and_optimizing_tables_act_on_both_layers_where_they_must():
    assert cluster_statements("DROP TABLE IF EXISTS posts_copy SYNC", CLUSTER, DATABASE) == [
        f"DROP TABLE IF EXISTS posts_copy ON CLUSTER {CLUSTER} SYNC",
        f"DROP TABLE IF EXISTS posts_copy_local ON CLUSTER {CLUSTER} SYNC",
    ]
    assert cluster_statements("DROP VIEW IF EXISTS recent_posts", CLUSTER, DATABASE) == [
        f"DROP VIEW IF EXISTS recent_posts ON CLUSTER {CLUSTER}",
    ]
    assert cluster_statements("EXCHANGE TABLES posts AND posts_copy", CLUSTER, DATABASE) == [
        f"EXCHANGE TABLES posts_local AND posts_copy_local ON CLUSTER {CLUSTER}",
    ]
    assert cluster_statements("OPTIMIZE TABLE likes FINAL", CLUSTER, DATABASE) == [
        f"OPTIMIZE TABLE likes_local ON CLUSTER {CLUSTER} FINAL",
    ]
    assert cluster_statements("INSERT INTO likes SELECT * FROM old_likes", CLUSTER, DATABASE) == [
        "INSERT INTO likes SELECT * FROM old_likes",
    ]


def test_statements_without_a_cluster_translation_are_refused_not_run_on_one_node():
    with pytest.raises(ClusterTranslationError, match="TO <table>"):
        cluster_statements(
            "CREATE MATERIALIZED VIEW v ENGINE = MergeTree ORDER BY did AS SELECT did FROM posts", CLUSTER, DATABASE
        )
    with pytest.raises(ClusterTranslationError, match="no translation"):
        cluster_statements("CREATE OR REPLACE VIEW v AS SELECT did FROM posts", CLUSTER, DATABASE)
    with pytest.raises(ClusterTranslationError, match="no translation"):
        cluster_statements("RENAME TABLE posts TO old_posts", CLUSTER, DATABASE)
    with pytest.raises(ClusterTranslationError, match="column list"):
        cluster_statements("CREATE TABLE copy AS posts ENGINE = MergeTree ORDER BY did", CLUSTER, DATABASE)


def test_a_table_without_a_sorting_key_spreads_at_random_and_other_engines_are_only_made_on_the_cluster():
    assert cluster_statements("CREATE TABLE t (x String) ENGINE = MergeTree ORDER BY tuple()", CLUSTER, DATABASE)[
        1
    ].endswith("cityHash64(tuple()))")
    assert cluster_statements("CREATE TABLE t (x String) ENGINE = Memory", CLUSTER, DATABASE) == [
        f"CREATE TABLE t ON CLUSTER {CLUSTER} (x String) ENGINE = Memory",
    ]


def test_the_cluster_compose_file_follows_the_compose_specification():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.cluster.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_cluster_compose_file_runs_two_shards_of_two_replicas_with_keeper_and_the_roles():
    services = yaml.safe_load((ROOT / "compose.cluster.yaml").read_text())["services"]
    config = ElementTree.parse(ROOT / "deploy/clickhouse/cluster.xml").getroot()
    keeper = ElementTree.parse(ROOT / "deploy/clickhouse/keeper.xml").getroot()
    [cluster] = config.find("remote_servers")
    shards = [[replica.findtext("host") for replica in shard.iter("replica")] for shard in cluster.iter("shard")]
    assert shards == [["clickhouse-s1r1", "clickhouse-s1r2"], ["clickhouse-s2r1", "clickhouse-s2r2"]]
    for number, hosts in enumerate(shards, start=1):
        for host in hosts:
            node = services[host]
            assert node["environment"]["CLICKHOUSE_SHARD"] == str(number)
            assert node["environment"]["CLICKHOUSE_REPLICA"] == host
            assert "./deploy/clickhouse/cluster.xml:/etc/clickhouse-server/config.d/cluster.xml:ro" in node["volumes"]
    keepers = {name: spec for name, spec in services.items() if name.startswith("keeper")}
    assert [node.findtext("host") for node in config.find("zookeeper")] == sorted(keepers)
    raft = {server.findtext("hostname"): server.findtext("id") for server in keeper.iter("server")}
    assert raft == {name: spec["environment"]["KEEPER_ID"] for name, spec in keepers.items()}
    nodes = {host for hosts in shards for host in hosts}
    for role in ("migrate", "web", "consumer", "plc-export", "worker", "beat"):
        environment = services[role]["environment"]
        assert environment["CLICKHOUSE_CLUSTER"] == cluster.tag
        assert urlsplit(environment["CLICKHOUSE_URL"]).hostname in nodes
    assert set(services) == nodes | set(keepers) | {
        "redis", "postgres", "migrate", "web", "consumer", "plc-export", "worker", "beat",
    }
