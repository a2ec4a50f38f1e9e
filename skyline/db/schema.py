"""The schema editor both ClickHouse backends use: django-clickhouse-backend's, cluster-aware."""

from clickhouse_backend.backend.schema import DatabaseSchemaEditor as ClickhouseSchemaEditor

from .cluster import cluster_statements


class DatabaseSchemaEditor(ClickhouseSchemaEditor):
    def execute(self, sql, params=()):
        """Run `sql`, translated for the cluster when the database is one (DATABASES["CLUSTER"])."""
        cluster = self.connection.settings_dict.get("CLUSTER")
        if not cluster:
            return super().execute(sql, params)
        for statement in cluster_statements(str(sql), cluster, self.connection.settings_dict["NAME"]):
            super().execute(statement, params)
