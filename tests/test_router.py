"""Models go to the store they belong in; migrate puts each table in one store only."""

import pytest
from django.contrib.auth.models import User
from django.db import connections

from apps.indexer.models import Block, Follow, Like, Post, RepoRecord, Repost
from skyline.routers import ClickhouseRouter
from tests.support.stores import BOTH_STORES

FIREHOSE_MODELS = [RepoRecord, Post, Like, Repost, Follow, Block]


@pytest.mark.parametrize("model", FIREHOSE_MODELS)
def test_firehose_models_are_read_and_written_in_clickhouse(model):
    router = ClickhouseRouter()
    assert router.db_for_read(model) == "clickhouse"
    assert router.db_for_write(model) == "clickhouse"
    assert router.allow_migrate("clickhouse", "indexer", model._meta.model_name, model=model)
    assert not router.allow_migrate("default", "indexer", model._meta.model_name, model=model)


def test_django_models_stay_in_the_relational_store():
    router = ClickhouseRouter()
    assert router.db_for_read(User) == "default"
    assert router.allow_migrate("default", "auth", "user", model=User)
    assert not router.allow_migrate("clickhouse", "auth", "user", model=User)


def test_sql_operations_go_where_their_hint_says():
    router = ClickhouseRouter()
    assert router.allow_migrate("clickhouse", "indexer", database="clickhouse")
    assert not router.allow_migrate("default", "indexer", database="clickhouse")


@pytest.mark.django_db(databases=BOTH_STORES)
def test_each_store_has_only_its_own_tables():
    clickhouse_tables = set(connections["clickhouse"].introspection.table_names())
    relational_tables = set(connections["default"].introspection.table_names())
    assert {"posts", "likes", "repo_records"} <= clickhouse_tables
    assert "auth_user" not in clickhouse_tables
    assert "auth_user" in relational_tables
    assert "posts" not in relational_tables


def test_relations_between_relational_rows_are_allowed_even_through_lazy_objects():
    from django.utils.functional import SimpleLazyObject

    router = ClickhouseRouter()
    user = User(username="ada")
    lazy_user = SimpleLazyObject(lambda: user)
    assert router.allow_relation(lazy_user, User(username="bob")) is True
    assert router.allow_relation(lazy_user, Post(did="did:plc:x", rkey="1")) is False
