"""Django database backend for embedded ClickHouse (chDB), built on django-clickhouse-backend."""
