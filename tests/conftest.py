from django.db import connections

BOTH_STORES = ["default", "clickhouse"]


def query(sql, params=None):
    """Rows of one statement on the ClickHouse test database."""
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
