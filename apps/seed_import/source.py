"""The old system's ClickHouse database, as SQL: a database on Skyline's own server, or one on
another server read through the remote() table function.
"""


def quote_identifier(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_string(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Source:
    """Where the old tables are. `name` identifies the source in the import's bookkeeping."""

    def __init__(self, database, remote=None, user="default", password=""):
        self.database = database
        self.remote = remote
        self.user = user
        self.password = password

    @property
    def name(self):
        return f"{self.remote}/{self.database}" if self.remote else self.database

    def table(self, table, database=None):
        """A FROM-clause expression reading `table` of the old database (or of `database`)."""
        database = database or self.database
        if self.remote is None:
            return f"{quote_identifier(database)}.{quote_identifier(table)}"
        arguments = [self.remote, database, table, self.user, self.password]
        return f"remote({', '.join(quote_string(argument) for argument in arguments)})"

    def tables_sql(self):
        """The names of the old database's tables."""
        return f"SELECT name FROM {self.table('tables', 'system')} WHERE database = {quote_string(self.database)}"

    def partitions_sql(self, table):
        """(partition id, rows) of a table's active parts: the chunks it is copied in."""
        return (
            f"SELECT partition_id, sum(rows) FROM {self.table('parts', 'system')} "
            f"WHERE database = {quote_string(self.database)} AND table = {quote_string(table)} AND active "
            "GROUP BY partition_id ORDER BY partition_id"
        )
