"""The one identity resolver: DID documents, signing keys, PDS endpoints and verified handles.

DID documents come from the PLC directory (`PLC_URL`) for did:plc and from the host for did:web
(https, or http for localhost as atproto allows in development), through the atproto SDK. They are
cached in Django's cache (Redis when configured), so every process shares them; callers that have
reason to doubt a cached document (a signature that does not verify) ask again with refresh=True.
"""

import re
from urllib.parse import urlsplit

import httpx
from atproto_core.did_doc import DidDocument
from atproto_identity.did.resolvers.plc_resolver import DidPlcResolver
from atproto_identity.did.resolvers.web_resolver import DidWebResolver
from atproto_identity.exceptions import AtProtocolError
from atproto_identity.handle.resolver import HandleResolver
from django.conf import settings
from django.core.cache import cache

DOCUMENT_TTL = 12 * 3600
FAILURE_TTL = 120
REFRESH_INTERVAL = 60
TIMEOUT = 10.0

_HANDLE = re.compile(
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
_DID = re.compile(r"^did:(plc:[a-z2-7]{24}|web:[a-zA-Z0-9.%-]+)$")


class IdentityError(Exception):
    """A DID or handle that could not be resolved or verified; the message says why."""


def is_did(value):
    return bool(_DID.fullmatch(value or ""))


def is_handle(value):
    return len(value or "") <= 253 and bool(_HANDLE.fullmatch(value or ""))


_LOCAL_HOSTS = ("localhost", "127.0.0.1")


def _serving_locally():
    """A development install (served on localhost, or DEBUG): only then may did:web use plain http
    to localhost. A public server must not be made to fetch from its own loopback ports."""
    return settings.DEBUG or urlsplit(settings.SERVICE_ENDPOINT).hostname in _LOCAL_HOSTS


class _LocalDidWebResolver(DidWebResolver):
    """did:web over http for localhost, which atproto allows for development and tests."""

    @staticmethod
    def _parse_web_did(did):
        host = did.split(":", 2)[2].replace("%3A", ":").replace("%3a", ":")
        if host.split(":")[0] in _LOCAL_HOSTS:
            if not _serving_locally():
                raise IdentityError(f"{did} is a development-only identity")
            return f"http://{host}/.well-known/did.json"
        return DidWebResolver._parse_web_did(did)


def _fetch_document(did):
    if did.startswith("did:plc:"):
        resolver = DidPlcResolver(settings.PLC_URL, TIMEOUT)
    elif did.startswith("did:web:"):
        resolver = _LocalDidWebResolver(TIMEOUT)
    else:
        raise IdentityError(f"unsupported DID method: {did}")
    try:
        raw = resolver.resolve_without_validation(did)
    except (AtProtocolError, httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise IdentityError(f"could not fetch the DID document of {did}: {type(exc).__name__}") from None
    if raw is None:
        raise IdentityError(f"no DID document for {did}")
    try:
        document = DidDocument.from_dict(raw)
    except Exception:
        raise IdentityError(f"the DID document of {did} is not valid") from None
    if document.id != did:
        raise IdentityError(f"the DID document fetched for {did} is about {document.id}")
    return raw


def did_document(did, refresh=False):
    """The DID document of `did` (a DidDocument), from the cache unless `refresh`.

    A refresh is honoured once a minute per DID at most, so a stream of tokens with bad signatures
    cannot turn every request into a fetch from the directory.
    """
    if not is_did(did):
        raise IdentityError(f"not a valid DID: {did!r}")
    key = f"identity:doc:{did}"
    if refresh and not cache.add(f"identity:refreshed:{did}", 1, REFRESH_INTERVAL):
        refresh = False
    cached = None if refresh else cache.get(key)
    if cached == "":
        raise IdentityError(f"no DID document for {did} (recently failed)")
    if cached is None:
        try:
            cached = _fetch_document(did)
        except IdentityError:
            cache.set(key, "", FAILURE_TTL)
            raise
        cache.set(key, cached, DOCUMENT_TTL)
    return DidDocument.from_dict(cached)


def signing_key(did, refresh=False):
    """The `#atproto` verification key of `did`, as a multibase string (did:key body)."""
    key = did_document(did, refresh).get_did_key()
    if not key:
        raise IdentityError(f"the DID document of {did} has no #atproto signing key")
    return key


def pds_endpoint(did, refresh=False):
    endpoint = did_document(did, refresh).get_pds_endpoint()
    if not endpoint:
        raise IdentityError(f"the DID document of {did} names no PDS")
    return endpoint.rstrip("/")


def verified_handle(did, refresh=False):
    """The handle `did` claims, if that handle resolves back to `did`; else None."""
    handle = did_document(did, refresh).get_handle()
    if not handle:
        return None
    try:
        return handle if _did_for_handle(handle) == did else None
    except IdentityError:
        return None


def _did_for_handle(handle):
    if settings.HANDLE_RESOLVER_URL:
        url = f"{settings.HANDLE_RESOLVER_URL}/xrpc/com.atproto.identity.resolveHandle"
        try:
            response = httpx.get(url, params={"handle": handle}, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise IdentityError(f"could not reach the handle resolver: {exc}") from None
        if response.status_code != 200:
            raise IdentityError(f"the handle {handle} does not resolve (HTTP {response.status_code})")
        did = response.json().get("did", "")
    else:
        did = HandleResolver(TIMEOUT).resolve(handle) or ""
    if not is_did(did):
        raise IdentityError(f"the handle {handle} does not resolve to a DID")
    return did


def resolve_handle(handle):
    """The DID of `handle`, verified both ways: the handle names the DID, and the DID claims it."""
    handle = handle.strip().lstrip("@").lower()
    if not is_handle(handle):
        raise IdentityError(f"not a valid handle: {handle!r}")
    key = f"identity:handle:{handle}"
    did = cache.get(key)
    if did:
        return did
    did = _did_for_handle(handle)
    claimed = did_document(did).get_handle()
    if (claimed or "").lower() != handle:
        raise IdentityError(f"{did} does not claim the handle {handle} (its document says {claimed or 'none'})")
    cache.set(key, did, DOCUMENT_TTL)
    return did
