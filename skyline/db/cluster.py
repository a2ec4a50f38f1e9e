"""Cluster mode: the migrations' DDL, translated for a sharded and replicated ClickHouse cluster.

Migrations are written for one server. With CLICKHOUSE_CLUSTER set, every statement a migration
runs through the schema editor (a model's CREATE TABLE as much as a RunSQL's views) is translated
here, so no migration needs a cluster variant:

- A *MergeTree table `t` becomes `t_local`, the Replicated engine ON CLUSTER (the replicas of a
  shard share a Keeper path), and `t`, a Distributed table over every shard's `t_local`. The app's
  queries and inserts keep the single-server names, so reads see every shard and inserts are
  routed by the row's account: the first DID column of the sorting key (`did`, `repo`,
  `actor_did`). A record and its tombstone carry the same DID and the same sorting key, so they
  meet on one shard and collapse there; FINAL over the Distributed table is then correct,
  because each shard applies it to keys no other shard holds.
- Views are created ON CLUSTER and read through the Distributed tables.
- A materialized view fires on inserts into the table it reads from, which on a cluster are the
  inserts into `t_local` on the shard the Distributed table chose: it reads the local table and
  writes into the local target, so each shard aggregates its own accounts and readers merge the
  shards through the target's Distributed table. A new query for it (ALTER ... MODIFY QUERY) reads
  the local table too.
- ALTERs of data (indexes, TTLs, mutations) go to the local tables ON CLUSTER; column changes
  (codecs included) go to the Distributed table too, which carries the column list.
- INSERT ... SELECT (backfills) and everything else run once, through the Distributed tables.

A statement this module cannot translate raises ClusterTranslationError rather than run on one
node: a half-clustered schema loses data quietly.
"""

import re

from .sql_text import masked as _masked
from .sql_text import split_top_level as _split

LOCAL_SUFFIX = "_local"
DID_COLUMNS = ("did", "repo", "actor_did")
REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"
CLUSTER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_NAME = r"(?P<name>`[^`]+`|\"[^\"]+\"|\w+)"
_IF_NOT_EXISTS = r"(?P<ine>IF\s+NOT\s+EXISTS\s+)?"
_CREATE_TABLE = re.compile(r"\s*CREATE\s+TABLE\s+" + _IF_NOT_EXISTS + _NAME + r"\s*", re.I)
_CREATE_VIEW = re.compile(r"\s*CREATE\s+(?P<kind>VIEW|MATERIALIZED\s+VIEW)\s+" + _IF_NOT_EXISTS + _NAME + r"\s*", re.I)
_DROP = re.compile(r"\s*DROP\s+(?P<kind>TABLE|VIEW)\s+(?P<ie>IF\s+EXISTS\s+)?" + _NAME + r"(?P<rest>.*)", re.I | re.S)
_ALTER = re.compile(r"\s*ALTER\s+TABLE\s+" + _NAME + r"\s+(?P<rest>.*)", re.I | re.S)
_MODIFY_QUERY = re.compile(r"\s*ALTER\s+TABLE\s+" + _NAME + r"\s+MODIFY\s+QUERY\s+", re.I)
_OPTIMIZE = re.compile(r"\s*OPTIMIZE\s+TABLE\s+" + _NAME + r"(?P<rest>.*)", re.I | re.S)
_EXCHANGE = re.compile(r"\s*EXCHANGE\s+TABLES\s+(?P<a>\w+)\s+AND\s+(?P<b>\w+)\s*$", re.I)
_SCHEMA_CHANGE = re.compile(r"\s*(CREATE|ALTER|DROP|RENAME|TRUNCATE|ATTACH|DETACH|EXCHANGE|OPTIMIZE)\b", re.I)
_ON_CLUSTER = re.compile(r"\bON\s+CLUSTER\b", re.I)
_ENGINE = re.compile(r"ENGINE\s*=\s*(?P<engine>\w+)\s*", re.I)
_SORTING_KEY = re.compile(r"\bORDER\s+BY\s+", re.I)
_CLAUSE_END = re.compile(r"\b(PARTITION\s+BY|PRIMARY\s+KEY|SAMPLE\s+BY|TTL|SETTINGS|COMMENT)\b", re.I)
_TO_TARGET = re.compile(r"TO\s+" + _NAME + r"\s+", re.I)
_FROM = re.compile(r"\bFROM\s+", re.I)
_COLUMN_CHANGE = re.compile(r"\b(ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.I)
_DATA_CHANGE = re.compile(
    r"\b(INDEX|PROJECTION|TTL|DELETE|UPDATE|SETTING|ORDER\s+BY|PARTITION|CONSTRAINT|STATISTICS)\b", re.I
)


class ClusterTranslationError(ValueError):
    """A migration statement cluster mode has no translation for."""


def cluster_statements(sql, cluster, database):
    """The statements that do on `cluster` what `sql` does on one server (`database` is the
    database the migration runs in, named in the Distributed tables)."""
    if _ON_CLUSTER.search(_masked(sql)):
        return [sql]  # already written for a cluster (django-clickhouse-backend's migration recorder)
    for pattern, translate in _TRANSLATIONS:
        match = pattern.match(sql)
        if match:
            return translate(sql, match, cluster, database)
    if _SCHEMA_CHANGE.match(sql):
        raise ClusterTranslationError(f"cluster mode has no translation for: {sql.strip()[:200]}")
    return [sql]


def local_name(name):
    return _unquoted(name) + LOCAL_SUFFIX


def _create_table(sql, match, cluster, database):
    name, ine = _unquoted(match["name"]), match["ine"] or ""
    rest = sql[match.end():]
    if not rest.startswith("("):
        raise ClusterTranslationError(f"cluster mode needs a column list in: {sql.strip()[:200]}")
    columns_end = _closing(rest, 0) + 1
    columns, rest = rest[:columns_end], rest[columns_end:].lstrip()
    engine = _ENGINE.match(rest)
    if engine is None:
        raise ClusterTranslationError(f"cluster mode needs ENGINE = after the columns in: {sql.strip()[:200]}")
    engine_name, after = engine["engine"], rest[engine.end():]
    arguments = ""
    if after.startswith("("):
        arguments_end = _closing(after, 0)
        arguments, after = after[1:arguments_end].strip(), after[arguments_end + 1:]
    if not engine_name.endswith("MergeTree") or engine_name.startswith("Replicated"):
        return [f"CREATE TABLE {ine}{name} ON CLUSTER {cluster} {columns} {rest}"]
    local = name + LOCAL_SUFFIX
    replicated = ", ".join(filter(None, [_literal(REPLICA_PATH), _literal(REPLICA_NAME), arguments]))
    return [
        f"CREATE TABLE {ine}{local} ON CLUSTER {cluster} {columns} "
        f"ENGINE = Replicated{engine_name}({replicated}){after}",
        f"CREATE TABLE {ine}{name} ON CLUSTER {cluster} AS `{database}`.{local} "
        f"ENGINE = Distributed({_literal(cluster)}, {_literal(database)}, {_literal(local)}, "
        f"{sharding_key(_sorting_key(after))})",
    ]


def sharding_key(sorting_key):
    """Rows go to the shard of their account; a table without one spreads by its whole key, so
    rows that replace each other still meet."""
    names = [_unquoted(part) for part in sorting_key]
    for name in names:
        if name in DID_COLUMNS:
            return f"cityHash64({name})"
    if names:
        return f"cityHash64({', '.join(sorting_key)})"
    return "rand()"


def _sorting_key(clauses):
    masked = _masked(clauses)
    start = _SORTING_KEY.search(masked)
    if start is None:
        return []
    position = start.end()
    if clauses[position] == "(":
        end = _closing(clauses, position)
        return _split(clauses[position + 1:end])
    stop = _CLAUSE_END.search(masked, position)
    return _split(clauses[position:stop.start() if stop else len(clauses)])


def _create_view(sql, match, cluster, database):
    name, ine, kind = _unquoted(match["name"]), match["ine"] or "", " ".join(match["kind"].upper().split())
    rest = sql[match.end():]
    if kind == "VIEW":
        return [f"CREATE VIEW {ine}{name} ON CLUSTER {cluster} {rest}"]
    target = _TO_TARGET.match(rest)
    if target is None:
        raise ClusterTranslationError(f"cluster mode needs materialized views with TO <table>: {name}")
    query = _reading_local_table(rest[target.end():], name)
    return [f"CREATE MATERIALIZED VIEW {ine}{name} ON CLUSTER {cluster} TO {local_name(target['name'])} {query}"]


def _modify_query(sql, match, cluster, database):
    # Only a materialized view's query is changed in place (ALTER ... MODIFY QUERY): as when it was
    # created, it reads the local table. A plain view is dropped and created again.
    name = _unquoted(match["name"])
    return [f"ALTER TABLE {name} ON CLUSTER {cluster} MODIFY QUERY {_reading_local_table(sql[match.end():], name)}"]


def _reading_local_table(query, view):
    """A materialized view's query, reading the local table of the table it reads FROM."""
    source = _FROM.search(_masked(query))
    table = re.match(_NAME, query[source.end():]) if source else None
    if table is None:
        raise ClusterTranslationError(f"cluster mode needs the materialized view {view} to read FROM a table")
    return query[:source.end()] + local_name(table["name"]) + query[source.end() + table.end():]


def _drop(sql, match, cluster, database):
    kind, ie, name, rest = match["kind"].upper(), match["ie"] or "", _unquoted(match["name"]), match["rest"].strip()
    statements = [f"DROP {kind} {ie}{name} ON CLUSTER {cluster} {rest}".rstrip()]
    if kind == "TABLE":
        statements.append(f"DROP TABLE {ie}{name}{LOCAL_SUFFIX} ON CLUSTER {cluster} {rest}".rstrip())
    return statements


def _alter(sql, match, cluster, database):
    name, commands = _unquoted(match["name"]), match["rest"]
    masked = _masked(commands)
    local = f"ALTER TABLE {name}{LOCAL_SUFFIX} ON CLUSTER {cluster} {commands}"
    if not _COLUMN_CHANGE.search(masked):
        return [local]
    if _DATA_CHANGE.search(masked):
        raise ClusterTranslationError(
            f"cluster mode needs column changes and data changes in separate ALTERs: {sql.strip()[:200]}"
        )
    return [local, f"ALTER TABLE {name} ON CLUSTER {cluster} {commands}"]


def _optimize(sql, match, cluster, database):
    return [f"OPTIMIZE TABLE {local_name(match['name'])} ON CLUSTER {cluster}{match['rest']}"]


def _exchange(sql, match, cluster, database):
    # The Distributed tables name their local tables, so swapping the local ones swaps the data.
    return [f"EXCHANGE TABLES {local_name(match['a'])} AND {local_name(match['b'])} ON CLUSTER {cluster}"]


_TRANSLATIONS = [
    (_CREATE_TABLE, _create_table),
    (_CREATE_VIEW, _create_view),
    (_DROP, _drop),
    (_MODIFY_QUERY, _modify_query),
    (_ALTER, _alter),
    (_OPTIMIZE, _optimize),
    (_EXCHANGE, _exchange),
]


def _unquoted(name):
    return name.strip().strip('`"')


def _literal(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _closing(sql, opening):
    """Index of the bracket closing the one at `opening`."""
    depth = 0
    masked = _masked(sql)
    for index in range(opening, len(masked)):
        if masked[index] == "(":
            depth += 1
        elif masked[index] == ")":
            depth -= 1
            if depth == 0:
                return index
    raise ClusterTranslationError(f"unbalanced brackets in: {sql.strip()[:200]}")
