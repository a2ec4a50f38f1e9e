"""Render Python values as ClickHouse SQL literals.

django-clickhouse-backend hands the driver `%s` placeholders and Python values, as it does to
clickhouse-driver. chDB takes only SQL text, so the values are rendered here, the same way
clickhouse-driver renders them for a server, but with a string escape that is a single
`str.translate` (the driver's per-character escape dominated ORM insert time).
"""

import datetime
import decimal
import enum
import ipaddress
import uuid

from clickhouse_backend.driver.escape import escape_param as _dcb_escape_param
from clickhouse_backend.driver.types import Binary

_STRING_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "'": "\\'",
        "\b": "\\b",
        "\f": "\\f",
        "\r": "\\r",
        "\n": "\\n",
        "\t": "\\t",
        "\0": "\\0",
        "\a": "\\a",
        "\v": "\\v",
    }
)


def escape_string(value):
    return "'" + value.translate(_STRING_ESCAPES) + "'"


def _utc_text(value):
    if value.tzinfo is None:
        # As clickhouse-driver does: a naive datetime is taken as UTC.
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _escape_datetime(value):
    # An instant, whatever the zone of the column it meets (a bare string would be read in it).
    return "toDateTime64('" + _utc_text(value) + "', 6, 'UTC')"


def escape_insert_value(value):
    """The literal for a value in a bulk INSERT ... VALUES row.

    Datetimes go as zoned strings, which the fast VALUES parser takes (with best-effort
    datetime input) without falling back to evaluating an expression per row.
    """
    if isinstance(value, datetime.datetime):
        return "'" + _utc_text(value) + "Z'"
    return escape(value)


def escape(value):
    """The SQL literal for one Python value."""
    if value is None:
        return "NULL"
    kind = type(value)
    if kind is str:
        return escape_string(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime.datetime):
        return _escape_datetime(value)
    if isinstance(value, datetime.date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, list):
        return "[" + ",".join(map(escape, value)) + "]"
    if isinstance(value, tuple):
        return "tuple(" + ",".join(map(escape, value)) + ")"
    if isinstance(value, dict):
        return "map(" + ",".join(escape(k) + "," + escape(v) for k, v in value.items()) + ")"
    if isinstance(value, (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return "'" + str(value) + "'"
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return escape(value.value)
    if isinstance(value, Binary):
        return _dcb_escape_param(value, None)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "unhex('" + bytes(value).hex() + "')"
    if isinstance(value, str):  # a str subclass, e.g. Django's SafeString
        return escape_string(str(value))
    if isinstance(value, int):  # an int subclass, e.g. IntEnum handled above; numpy ints
        return str(int(value))
    raise TypeError(f"cannot send a value of type {kind.__name__} to ClickHouse")


def substitute(sql, params):
    """`sql` with its pyformat placeholders replaced by escaped literals."""
    if isinstance(params, dict):
        return sql % {key: escape(value) for key, value in params.items()}
    return sql % tuple(escape(value) for value in params)
