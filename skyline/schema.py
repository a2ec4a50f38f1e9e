"""Whether a store's schema is up to date, so a role can refuse to start with a clear message."""

from django.core.management.base import CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

MIGRATE = {"default": "manage.py migrate", "clickhouse": "manage.py migrate --database clickhouse"}


def require_migrated(*aliases):
    """Raise CommandError naming the command to run when a store has migrations not yet applied."""
    for alias in aliases:
        executor = MigrationExecutor(connections[alias])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError(f"the {alias} database is not migrated: run `{MIGRATE[alias]}` first")
