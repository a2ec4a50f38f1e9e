"""Turn ClickHouse JSON output values into the Python values clickhouse-driver would return.

Converters are built once per ClickHouse type string and cached, so a result set pays only
for the calls, not for parsing the type again.
"""

import datetime
import decimal
import ipaddress
import uuid
from functools import lru_cache
from zoneinfo import ZoneInfo

from skyline.db.sql_text import split_top_level


def _unwrap(type_name):
    """('Array', ['String']) for 'Array(String)'; ('String', []) for 'String'."""
    head, paren, rest = type_name.partition("(")
    if not paren:
        return type_name, []
    return head, split_top_level(rest[:-1])


def identity(value):
    """The converter of a type whose JSON value is already the Python value (the driver skips it)."""
    return value


def _to_int(value):
    return int(value)


def _to_float(value):
    # Denormals (nan, inf, -inf) arrive quoted; ordinary numbers do not.
    return float(value) if isinstance(value, str) else value


def _to_decimal(value):
    return decimal.Decimal(value)


def _to_uuid(value):
    return uuid.UUID(value)


def _to_date(value):
    return datetime.date.fromisoformat(value)


def _datetime_converter(tz_name):
    tz = ZoneInfo(tz_name) if tz_name else datetime.timezone.utc

    def convert(value):
        moment = datetime.datetime.fromisoformat(value).replace(tzinfo=tz)
        return moment.astimezone(datetime.timezone.utc) if tz_name else moment

    return convert


def _timezone_argument(args):
    for arg in args:
        if arg.startswith("'"):
            return arg.strip("'")
    return None


@lru_cache(maxsize=1024)
def converter_for(type_name):
    """The function that turns one JSON value of `type_name` into its Python value."""
    head, args = _unwrap(type_name)
    if head in ("Nullable",):
        inner = converter_for(args[0])
        if inner is identity:
            return identity
        return lambda value: None if value is None else inner(value)
    if head in ("LowCardinality", "SimpleAggregateFunction"):
        return converter_for(args[-1])
    if head in ("Int64", "UInt64", "Int128", "UInt128", "Int256", "UInt256"):
        return _to_int
    if head in ("Float32", "Float64", "BFloat16"):
        return _to_float
    if head.startswith("Decimal"):
        return _to_decimal
    if head == "UUID":
        return _to_uuid
    if head in ("Date", "Date32"):
        return _to_date
    if head in ("DateTime", "DateTime64"):
        # Values come in the column's zone (or the server's, UTC here); Django wants aware UTC.
        return _datetime_converter(_timezone_argument(args))
    if head == "IPv4":
        return ipaddress.IPv4Address
    if head == "IPv6":
        return ipaddress.IPv6Address
    if head == "Array":
        inner = converter_for(args[0])
        if inner is identity:
            return list
        return lambda value: [inner(item) for item in value]
    if head == "Map":
        key, val = converter_for(args[0]), converter_for(args[1])
        key_is_text = _unwrap(args[0])[0] in ("String", "LowCardinality", "FixedString", "Enum8", "Enum16")
        # JSON object keys are always strings; non-string map keys are converted back.
        if key_is_text and val is identity:
            return dict
        return lambda value: {
            (k if key_is_text else key(_parse_json_scalar(k))): val(v) for k, v in value.items()
        }
    if head == "Tuple":
        items = [converter_for(_strip_tuple_name(arg)) for arg in args]
        return lambda value: tuple(conv(item) for conv, item in zip(items, value))
    return identity


def _strip_tuple_name(arg):
    # Named tuple elements look like 'name Type'.
    name, space, rest = arg.partition(" ")
    if space and "(" not in name and not name[:1].isupper():
        return rest
    return arg


def _parse_json_scalar(text):
    try:
        return int(text)
    except ValueError:
        return text
