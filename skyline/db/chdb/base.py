"""The chDB database wrapper: django-clickhouse-backend with the chDB driver underneath.

Everything that makes SQL (compiler, schema editor, migrations, introspection, test-database
creation) is django-clickhouse-backend's, so the same models and migrations run on chDB and on a
ClickHouse server. Only the connection handling differs: chDB opens a data directory in process.
"""

from clickhouse_backend.backend.base import DatabaseWrapper as ClickhouseDatabaseWrapper
from django.utils.asyncio import async_unsafe

from skyline.db import metrics

from ..schema import DatabaseSchemaEditor
from . import driver


class DatabaseWrapper(ClickhouseDatabaseWrapper):
    display_name = "ClickHouse (chDB)"
    SchemaEditorClass = DatabaseSchemaEditor
    Database = driver

    def get_connection_params(self):
        options = self.settings_dict.get("OPTIONS", {})
        return {"path": str(options["path"]), "database": self.settings_dict["NAME"] or "default"}

    @async_unsafe
    def get_new_connection(self, conn_params):
        # One chDB session per Django connection (that is, per thread); sessions on one path share
        # the process's embedded engine, and `USE` is per session.
        return driver.connect(**conn_params)

    @async_unsafe
    def create_cursor(self, name=None):
        return self.connection.cursor()

    @async_unsafe
    def chunked_cursor(self):
        self.ensure_connection()
        params = self.get_connection_params()
        return self._prepare_cursor(driver.StreamingRows(params["path"], params["database"]))

    def _close(self):
        if self.connection is not None:
            self.connection.close()

    def is_usable(self):
        try:
            self.connection.query("SELECT 1")
        except driver.Error:
            return False
        return True

    def insert_rows(self, table, columns, rows):
        """Append `rows` (tuples of Python values in `columns` order) to `table`.

        The one ClickHouse write path for bulk data: a streamed columnar insert, not the ORM.
        """
        self.ensure_connection()
        # Not through a cursor, so timed here rather than by the execute wrapper.
        with metrics.timed("insert"), self.wrap_database_errors:
            written = self.connection.insert_rows(self.ops.quote_name(table), columns, rows)
        metrics.inserted(table, written)
        return written
