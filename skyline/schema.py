"""Whether a store's schema is up to date, so a role can refuse to start with a clear message."""

import importlib.util
import pkgutil

from django.apps import apps
from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

MIGRATE = {"default": "manage.py migrate", "clickhouse": "manage.py migrate --database clickhouse"}


def require_migrated(*aliases):
    """Raise CommandError naming the command to run when a store has migrations not yet applied."""
    for alias in aliases:
        if _every_file_applied(alias):
            continue
        # The migration graph imports every migration module, which is slow: only when the quick
        # answer was not yes, to tell a real gap from, say, a squashed migration.
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connections[alias])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError(f"the {alias} database is not migrated: run `{MIGRATE[alias]}` first")


def _every_file_applied(alias):
    """Whether every migration file on disk is recorded as applied: one query, nothing imported."""
    try:
        applied = MigrationRecorder(connections[alias]).applied_migrations()
    except DatabaseError:
        return False
    return all(key in applied for key in _migration_files())


def _migration_files():
    """(app label, migration name) of every migration module on disk, found as the loader finds them."""
    for app_config in apps.get_app_configs():
        module_name, _ = MigrationLoader.migrations_module(app_config.label)
        try:
            spec = module_name and importlib.util.find_spec(module_name)
        except ModuleNotFoundError:
            continue
        if not spec or spec.submodule_search_locations is None:
            continue
        for module in pkgutil.iter_modules(spec.submodule_search_locations):
            if not module.ispkg and module.name[0] not in "_~":
                yield app_config.label, module.name
