"""Read settings from the environment: tiny typed readers that name the variable on a bad value."""

import math
import re
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_HOSTLESS_SCHEMES = {"sqlite", "unix"}
_PORT = re.compile(r"[0-9]{1,5}")
# Listening on every interface names no address to visit, and did:web cannot hold an IPv6 address.
_LOCALHOST_BINDS = {"0.0.0.0", "[::]", "[::1]"}


class Environment:
    def __init__(self, environ):
        self.environ = environ

    def str(self, name, default=""):
        return self.environ.get(name, default).strip()

    def bool(self, name, default=False):
        raw = self.environ.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ImproperlyConfigured(f"{name} must be true or false (1/0, yes/no), not {raw!r}")

    def int(self, name, default, minimum=None):
        return self._number(name, default, minimum, int, "a whole number")

    def float(self, name, default, minimum=None):
        return self._number(name, default, minimum, float, "a number")

    def _number(self, name, default, minimum, parse, described):
        raw = self.environ.get(name)
        if raw is None or not raw.strip():
            return default
        try:
            value = parse(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be {described}, not {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
        return value

    def list(self, name, default=()):
        raw = self.environ.get(name)
        if raw is None:
            return list(default)
        return [item.strip() for item in raw.split(",") if item.strip()]

    def url(self, name, default="", schemes=("http", "https")):
        """A URL with one of `schemes`, a host (but for file-like schemes) and a valid port; the
        default when unset; '' stays ''."""
        value = self.str(name, default)
        if not value:
            return value
        parts = urlsplit(value)
        shown = _without_password(value)
        if parts.scheme not in schemes or (parts.scheme not in _HOSTLESS_SCHEMES and not parts.hostname):
            allowed = ", ".join(f"{scheme}://" for scheme in schemes)
            raise ImproperlyConfigured(f"{name} must be a URL starting with {allowed} and naming a host, not {shown!r}")
        try:
            parts.port  # noqa: B018 (raises on a port that is not a number in range)
        except ValueError:
            raise ImproperlyConfigured(f"{name} has a port that is not a number from 0 to 65535: {shown!r}") from None
        return value

    def origins(self, name):
        """Comma-separated origins (http:// or https://, a host, an optional port, nothing after)."""
        values = self.list(name)
        for value in values:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or value != origin(value):
                raise ImproperlyConfigured(
                    f"{name} must be comma-separated origins like https://admin.example.com, not {value!r}")
        return values

    def address(self, name):
        """HOST:PORT to listen on (an IPv6 host in brackets), or '' when unset."""
        value = self.str(name)
        if value:
            try:
                split_address(value)
            except ValueError:
                raise ImproperlyConfigured(
                    f"{name} must be HOST:PORT, e.g. 127.0.0.1:8001, not {value!r}") from None
        return value

    def did(self, name, default=""):
        value = self.str(name, default)
        if value and not (value.startswith(("did:plc:", "did:web:")) and len(value) > 8):
            raise ImproperlyConfigured(f"{name} must be a did:plc: or did:web: identifier, not {value!r}")
        return value


def _without_password(url):
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def clickhouse_server(url):
    """DATABASES entry for CLICKHOUSE_URL (clickhouse://user:password@host:port/database)."""
    parts = urlsplit(url)
    options = {"settings": {"mutations_sync": 1}}
    if parts.scheme == "clickhouses":
        options["secure"] = True
    return {
        "ENGINE": "skyline.db.clickhouse",
        "HOST": parts.hostname,
        "PORT": parts.port or (9440 if parts.scheme == "clickhouses" else 9000),
        "NAME": parts.path.lstrip("/") or "default",
        "USER": unquote(parts.username or "default"),
        "PASSWORD": unquote(parts.password or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": None,
    }


def service_did(endpoint):
    """did:web of SERVICE_ENDPOINT's host (with a port only for localhost, as did:web encodes it)."""
    parts = urlsplit(endpoint)
    host = parts.hostname
    if parts.port and host in ("localhost", "127.0.0.1"):
        return f"did:web:{host}%3A{parts.port}"
    return f"did:web:{host}"


def split_address(address):
    """(host, port) of HOST:PORT, the host without an IPv6 address's brackets; ValueError otherwise."""
    host, _, port = address.rpartition(":")
    if not (host and _PORT.fullmatch(port) and 0 < int(port) < 65536):
        raise ValueError(f"not HOST:PORT: {address!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def local_endpoint(address):
    """The http:// URL a development server listening on HOST:PORT is visited at."""
    host, _, port = address.rpartition(":")
    return f"http://{'localhost' if host in _LOCALHOST_BINDS else host}:{port}"


def origin(url):
    """scheme://host[:port] of a URL, as browsers send it in Origin."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
