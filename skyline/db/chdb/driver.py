"""A DB-API 2.0 driver for chDB, shaped like clickhouse-driver's for django-clickhouse-backend.

chDB runs ClickHouse inside this process. It takes SQL text and returns formatted bytes, so this
driver renders parameters into the SQL (escape.py), asks for JSONCompact output and converts it
to the Python values clickhouse-driver returns (types.py), and raises clickhouse-driver's DB-API
exceptions so Django and the backend handle errors as they do with a server.
"""

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager

import orjson
from clickhouse_driver.dbapi.errors import (  # noqa: F401  (re-exported: Django reads them here)
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
)
from clickhouse_driver.errors import ServerException

from .escape import escape_insert_value, substitute
from .types import converter_for, identity

apilevel = "2.0"
threadsafety = 1
paramstyle = "pyformat"

# Per-session settings. JSON output made lossless: exact decimals and big integers,
# nan/inf as strings, tuples as arrays, valid UTF-8 (invalid bytes become U+FFFD). Inserts take
# ISO datetimes with zones; ALTER UPDATE/DELETE finish before they return, as Django expects.
SESSION_SETTINGS = {
    "output_format_json_quote_64bit_integers": 1,
    "output_format_json_quote_decimals": 1,
    "output_format_json_quote_denormals": 1,
    "output_format_json_named_tuples_as_objects": 0,
    "output_format_json_validate_utf8": 1,
    "date_time_input_format": "'best_effort'",
    "mutations_sync": 1,
}

_CODE = re.compile(r"Code: (\d+)\.")
_PROGRAMMING_CODES = {46, 47, 60, 62, 81, 16, 36, 42, 43, 44, 48, 115, 390}
_DATA_CODES = {6, 26, 27, 32, 38, 41, 53, 69, 70, 72, 117, 321, 395}
_MUTATION = re.compile(r'^ALTER TABLE ("(?:[^"]|\\.)+") (?:UPDATE|DELETE) ', re.IGNORECASE)
_INSERT_VALUES = re.compile(r"^\s*INSERT\s+INTO\s.*\sVALUES\s*$", re.IGNORECASE | re.DOTALL)


class DataDirectoryLocked(OperationalError):
    """Another process has the chDB data directory open."""

    def __init__(self, path):
        self.path = path
        super().__init__(
            f"The ClickHouse data directory {path} is in use by another process: chDB lets only one "
            "process open it. Stop that process, or run everything in it with `manage.py serve`, "
            "or set CLICKHOUSE_URL to use a ClickHouse server."
        )


def _error_from(exc):
    """Map a chDB error (a RuntimeError with 'Code: NN.' in it) to a DB-API error."""
    message = str(exc)
    found = _CODE.search(message)
    code = int(found.group(1)) if found else 0
    if code in _PROGRAMMING_CODES:
        cls = ProgrammingError
    elif code in _DATA_CODES:
        cls = DataError
    else:
        cls = OperationalError
    # django-clickhouse-backend reads the numeric code from args[0], as clickhouse-driver gives it.
    return cls(ServerException(message, code))


_engine_lock = threading.Lock()
_engine_anchor = {}


def _open(path):
    """A new chDB session on `path`, keeping the engine up for the life of the process.

    The embedded engine shuts down when its last session closes and takes ~60 ms to start again,
    so one anchor session is held open per path; sessions opened after it are cheap.

    chDB is imported here, on first use, not with this module: once loaded, a process that forks
    (gunicorn's master) leaves its child unable to run a query, so `manage.py serve` must be able
    to load Django and this backend without loading chDB.
    """
    chdb = _import_chdb()
    with _engine_lock:
        try:
            if path not in _engine_anchor:
                with _engine_stderr():
                    _engine_anchor[path] = chdb.connect(path)
                if chdb.engine_version == "unknown":
                    version = _engine_anchor[path].query("SELECT version()", "CSV").bytes()
                    chdb.engine_version = version.decode().strip().strip('"')
            return chdb.connect(path)
        except RuntimeError as exc:
            text = str(exc)
            if "Cannot lock file" in text or "Error initializing EmbeddedServer" in text:
                raise DataDirectoryLocked(path) from None
            raise _error_from(exc) from None


def _import_chdb():
    """The chdb package, loaded without pyarrow (and the numpy it pulls in) and without a throwaway engine.

    chdb's package imports pyarrow when it is installed (a third of a second), yet treats it as
    optional: the Arrow results this driver never asks for are all that need it. Marking pyarrow
    missing while chdb loads keeps it out; the mark is lifted at once, so code that does use
    pyarrow still imports it as usual.

    The package also starts an in-memory engine and shuts it down again, only to read the engine's
    version into `chdb.engine_version`: a tenth of a second of every command's start-up, before the
    engine on the data directory starts. While the package loads, its extension's `connect()` called
    without a path (only that line calls it so) answers the version query without an engine; the
    version is read from the real engine once it is up (_open).
    """
    if "chdb" in sys.modules:
        return sys.modules["chdb"]
    hidden = "pyarrow" not in sys.modules
    if hidden:
        sys.modules["pyarrow"] = None  # `import pyarrow` raises ImportError while this stands
    finder = _NoThrowawayEngine()
    sys.meta_path.insert(0, finder)
    try:
        import chdb
    finally:
        sys.meta_path.remove(finder)
        finder.restore()
        if hidden and "pyarrow" in sys.modules and sys.modules["pyarrow"] is None:
            del sys.modules["pyarrow"]
    return chdb


class _NoThrowawayEngine(importlib.abc.MetaPathFinder):
    """Finds chdb's extension module as the import system would, and gives it, for the time the
    package takes to load, a `connect()` whose path-less call makes no engine (see _import_chdb)."""

    def __init__(self):
        self.extension = None
        self.connect = None

    def find_spec(self, name, path, target=None):
        if name != "chdb._chdb":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Wrapped(spec.loader, self)
        return spec

    def loaded(self, extension):
        self.extension = extension
        real = self.connect = extension.connect

        def connect(*args, **kwargs):
            return real(*args, **kwargs) if args or kwargs else _VersionOnly()

        extension.connect = connect

    def restore(self):
        if self.extension is not None:
            self.extension.connect = self.connect


class _Wrapped(importlib.abc.Loader):
    def __init__(self, loader, finder):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.finder.loaded(module)


class _VersionOnly:
    """Stands in for the in-memory session chdb's package opens to ask `SELECT version()`."""

    def query(self, sql, output_format="CSV", **kwargs):
        return self

    def bytes(self):
        return b'"unknown"\n'  # read as unknown until the engine is up

    def close(self):
        pass


@contextmanager
def _engine_stderr():
    """Hold what the engine writes to file descriptor 2 while it starts: it prints its errors there
    itself before raising them. A start that works passes the text on; one that fails drops it, as
    the error raised says the same."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        os.write(2, held.read())


def connect(path, database="default", **_ignored):
    return Connection(path, database)


class Connection:
    def __init__(self, path, database):
        self.path = path
        self.database = database
        self._session = _open(path)
        self._lock = threading.Lock()
        self.closed = False
        for name, value in SESSION_SETTINGS.items():
            self.query(f"SET {name} = {value}")
        self.query(f"USE `{database}`")

    def query(self, sql):
        """Run one statement; the raw JSONCompact bytes of its result (empty for DDL and inserts)."""
        if self.closed:
            raise InterfaceError("connection already closed")
        with self._lock:
            try:
                result = self._session._conn.query(sql, "JSONCompact", params={})
            except RuntimeError as exc:
                raise _error_from(exc) from None
        return result.bytes()

    def insert_rows(self, table, columns, rows):
        """Stream `rows` (tuples in `columns` order, or EncodedRows) into `table`; the number of rows inserted."""
        # No replacing of a block's own duplicate keys while it is written (a fifth of a firehose
        # insert's cost): the versions of a record changed twice in one batch stay apart until a
        # merge, as versions from different batches do, and every reader that needs one version
        # per record already asks for it (FINAL, or LIMIT 1 BY).
        head = f"INSERT INTO {table} ({', '.join(columns)}) SETTINGS optimize_on_insert = 0"
        # One dumps of the whole list is ~20x faster than one per row; JSONCompactEachRow reads
        # rows separated by commas, so the list's brackets are all that has to go.
        encoded = getattr(rows, "payload", None)  # rows already encoded (apps.indexer.rows.EncodedRows)
        if encoded is not None:
            payload, count = encoded, len(rows)
        else:
            rows = rows if isinstance(rows, (list, tuple)) else list(rows)
            payload, count = orjson.dumps(rows)[1:-1], len(rows)
        with self._lock:
            try:
                # The block cancels an insert the store refused; left open, it would block the session.
                with self._session.send_insert(head, "JSONCompactEachRow") as inserter:
                    inserter.append(payload)
                    inserter.finish()
                # Not finish().rows_written: that also counts what materialized views wrote.
                return count
            except RuntimeError as exc:
                raise _error_from(exc.__cause__ or exc) from None

    def cursor(self):
        return Cursor(self)

    def commit(self):
        pass

    def rollback(self):
        pass

    def close(self):
        if not self.closed:
            self.closed = True
            self._session.close()


def _convert_rows(meta, data):
    converters = [converter_for(column["type"]) for column in meta]
    if all(conv is identity for conv in converters):
        return [tuple(row) for row in data]
    return [tuple(conv(value) for conv, value in zip(converters, row)) for row in data]


def _description(meta):
    return [(column["name"], column["type"], None, None, None, None, True) for column in meta]


def _outside_quotes(sql):
    """`sql` with the inside of every quoted literal or identifier blanked out (same length), so
    keywords can be looked for without matching text inside a value."""
    out, quote, escaped = [], None, False
    for ch in sql:
        if quote is None:
            if ch in "'\"`":
                quote = ch
            out.append(ch)
        elif escaped:
            escaped = False
            out.append(" ")
        elif ch == "\\":
            escaped = True
            out.append(" ")
        elif ch == quote:
            quote = None
            out.append(ch)
        else:
            out.append(" ")
    return "".join(out)


class Cursor:
    arraysize = 1

    def __init__(self, connection):
        self.connection = connection
        self.description = None
        self.rowcount = -1
        self.columnar = None
        self._rows = []
        self._position = 0

    def execute(self, operation, parameters=None):
        if _INSERT_VALUES.match(operation) and parameters and isinstance(parameters[0], (list, tuple)):
            sql = operation + " " + ",".join("(" + ",".join(map(escape_insert_value, row)) + ")" for row in parameters)
            self._run(sql)
            self.rowcount = len(parameters)
            return
        sql = operation if parameters is None else substitute(operation, parameters)
        counted = self._count_mutated_rows(sql)
        self._run(sql)
        if counted is not None:
            self.rowcount = counted

    def executemany(self, operation, seq_of_parameters):
        rows = list(seq_of_parameters)
        if _INSERT_VALUES.match(operation):
            self.execute(operation, rows)
            return
        total = 0
        for parameters in rows:
            self.execute(operation, parameters)
            total += max(self.rowcount, 0)
        self.rowcount = total

    def _count_mutated_rows(self, sql):
        """ALTER UPDATE/DELETE report no row count; count the rows they will touch first."""
        match = _MUTATION.match(sql)
        if not match:
            return None
        upper = _outside_quotes(sql).upper()
        where_at = upper.rfind(" WHERE ")
        if where_at < 0:
            return None
        settings_at = upper.rfind(" SETTINGS ", where_at)
        where = sql[where_at + 7 : settings_at if settings_at > 0 else None]
        self._run(f"SELECT count() FROM {match.group(1)} WHERE {where}")
        return self._rows[0][0]

    def _run(self, sql):
        raw = self.connection.query(sql)
        self._position = 0
        if not raw:
            self.description, self._rows, self.rowcount = None, [], -1
            return
        result = orjson.loads(raw)
        meta = result["meta"]
        self.description = _description(meta)
        self._rows = _convert_rows(meta, result["data"])
        self.rowcount = len(self._rows)
        if self.columnar:
            self._rows = [tuple(column) for column in zip(*self._rows)] if self._rows else []

    def fetchone(self):
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    def fetchmany(self, size=None):
        # Always a list: Django's cursor_iter stops on [] (an empty tuple would loop forever).
        size = size or self.arraysize
        rows = self._rows[self._position : self._position + size]
        self._position += len(rows)
        return rows

    def fetchall(self):
        rows = self._rows[self._position :]
        self._position = len(self._rows)
        return rows

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row

    def close(self):
        self._rows = []

    def setinputsizes(self, sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class StreamingRows:
    """A cursor that pulls result blocks as it is read, for QuerySet.iterator().

    chDB runs one query at a time per session, so a stream gets a session of its own and the
    connection it came from stays free for other queries while it is being read.
    """

    arraysize = 2000

    def __init__(self, path, database):
        self.connection = Connection(path, database)
        self.description = None
        self.rowcount = -1
        self._stream = None
        self._pending = []
        self._converters = None

    def execute(self, operation, parameters=None):
        sql = operation if parameters is None else substitute(operation, parameters)
        self._close_stream()
        self._pending, self._converters, self.description = [], None, None
        try:
            self._stream = self.connection._session.send_query(sql, "JSONCompactEachRowWithNamesAndTypes")
        except RuntimeError as exc:
            raise _error_from(exc) from None
        self._fill()

    def _fill(self):
        """Read blocks until some rows are pending or the result ends.

        Each block chDB streams is whole rows and starts with its own names and types lines.
        """
        while not self._pending and self._stream is not None:
            try:
                chunk = self._stream.fetch()
            except RuntimeError as exc:
                raise _error_from(exc) from None
            data = chunk.bytes() if chunk is not None else b""
            if not data:
                self._close_stream()
                break
            names, kinds, *rows = data.rstrip(b"\n").split(b"\n")
            if self._converters is None:
                kinds = orjson.loads(kinds)
                self.description = [
                    (name, kind, None, None, None, None, True) for name, kind in zip(orjson.loads(names), kinds)
                ]
                self._converters = [converter_for(kind) for kind in kinds]
            converters = self._converters
            self._pending.extend(
                tuple(conv(v) for conv, v in zip(converters, orjson.loads(row))) for row in rows if row
            )
        self._pending.reverse()

    def fetchone(self):
        if not self._pending:
            self._fill()
        return self._pending.pop() if self._pending else None

    def fetchmany(self, size=None):
        size = size or self.arraysize
        rows = []
        while len(rows) < size and (row := self.fetchone()) is not None:
            rows.append(row)
        return rows

    def fetchall(self):
        return self.fetchmany(float("inf"))

    def _close_stream(self):
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self):
        self._close_stream()
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
