"""Django database backend for a ClickHouse server: django-clickhouse-backend plus insert_rows."""
