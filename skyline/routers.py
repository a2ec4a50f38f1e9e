"""Send ClickHouse models to the `clickhouse` database and everything else to `default`."""

from django.apps import apps
from clickhouse_backend.models import ClickhouseModel

CLICKHOUSE = "clickhouse"


def _is_clickhouse(model):
    if issubclass(model, ClickhouseModel):
        return True
    # Migrations pass historical models, which are plain Models: ask the registry about the real one.
    try:
        real = apps.get_model(model._meta.app_label, model._meta.model_name)
    except LookupError:
        return getattr(model._meta, "engine", None) is not None
    return issubclass(real, ClickhouseModel)


class ClickhouseRouter:
    def db_for_read(self, model, **hints):
        return CLICKHOUSE if _is_clickhouse(model) else "default"

    db_for_write = db_for_read

    def allow_relation(self, obj1, obj2, **hints):
        # Rows in different stores cannot be joined or referenced by a foreign key. (__class__, not
        # type(): a lazy object such as request.user reports the class of what it wraps.)
        return _is_clickhouse(obj1.__class__) == _is_clickhouse(obj2.__class__)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        model = hints.get("model")
        if model is not None:
            return (db == CLICKHOUSE) == _is_clickhouse(model)
        # Operations with no model (RunSQL, RunPython) say where they belong with a hint.
        target = hints.get("database")
        if target is not None:
            return db == target
        return db == "default"
