"""django-clickhouse-backend for a ClickHouse server, with the bulk insert path Skyline uses."""

from clickhouse_backend.backend.base import DatabaseWrapper as ClickhouseDatabaseWrapper

from skyline.db import metrics

from ..schema import DatabaseSchemaEditor


class DatabaseWrapper(ClickhouseDatabaseWrapper):
    SchemaEditorClass = DatabaseSchemaEditor

    def insert_rows(self, table, columns, rows):
        """Append `rows` (tuples in `columns` order) with clickhouse-driver's native insert."""
        sql = f"INSERT INTO {self.ops.quote_name(table)} ({', '.join(columns)}) VALUES"
        rows = rows if isinstance(rows, (list, tuple)) else list(rows)
        # Timed and its errors counted by the execute wrapper (skyline.db.metrics).
        with self.cursor() as cursor:
            cursor.executemany(sql, rows)
        metrics.inserted(table, len(rows))
        return len(rows)
