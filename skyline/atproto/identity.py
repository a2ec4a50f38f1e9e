"""The one identity resolver: DID documents, signing keys, PDS endpoints and verified handles.

DID documents come from the PLC directory (`PLC_URL`, trusted as configured) for did:plc and from
https://<host>/.well-known/did.json for did:web; handles resolve through HANDLE_RESOLVER_URL when it
is set, else DNS and https://<handle>/.well-known/atproto-did. Every fetch goes through the outbound
client (skyline/atproto/outbound.py): a did:web host or a handle's domain must be a public https address,
and an answer is cut off past its deadline and size cap. Documents are cached in Django's cache
(Redis when configured), so every process shares them; callers that have reason to doubt a cached
document (a signature that does not verify) ask again with refresh=True.
"""

from django.conf import settings
from django.core.cache import cache

from skyline.atproto.syntax import is_handle
from skyline.atproto.syntax import is_resolvable_did as is_did  # the DIDs this module resolves

DOCUMENT_TTL = 12 * 3600
FAILURE_TTL = 120
REFRESH_INTERVAL = 60
DNS_SECONDS = 5.0

# dnspython and the atproto SDK load on first use, not with this module: apps.feeds.rules imports it,
# so every command would pay their tenth of a second at start-up for nothing.


def _did_document_class():
    from atproto_core.did_doc import DidDocument

    return DidDocument


# atproto lets did:web use plain http for these, in development.
_LOCAL_HOSTS = ("localhost", "127.0.0.1")


class IdentityError(Exception):
    """A DID or handle that could not be resolved or verified; the message says why."""


def _get(url, path, trusted=False, **kwargs):
    """The Answer of a small GET (a document, a DID); IdentityError when it cannot be had."""
    from skyline.atproto import outbound  # httpx, loaded by the roles that resolve, not by every command

    try:
        with outbound.Client(url, trusted=trusted) as client:
            return client.request(
                "GET", path, limit=outbound.DOCUMENT_BYTES, seconds=outbound.DOCUMENT_SECONDS, **kwargs
            )
    except outbound.OutboundError as exc:
        raise IdentityError(str(exc)) from None


def _did_web_url(did):
    host = did.split(":", 2)[2].replace("%3A", ":").replace("%3a", ":")
    local = settings.OUTBOUND_ALLOW_PRIVATE and host.rsplit(":", 1)[0] in _LOCAL_HOSTS
    return f"{'http' if local else 'https'}://{host}"


def _fetch_document(did):
    try:
        if did.startswith("did:plc:"):
            answer = _get(settings.PLC_URL, f"/{did}", trusted=True)
        else:
            answer = _get(_did_web_url(did), "/.well-known/did.json")
    except IdentityError as exc:
        raise IdentityError(f"could not fetch the DID document of {did}: {exc}") from None
    if answer.status == 404:
        raise IdentityError(f"no DID document for {did}")
    raw = answer.json()
    if answer.status != 200 or not isinstance(raw, dict):
        raise IdentityError(f"could not fetch the DID document of {did} (HTTP {answer.status})")
    try:
        document = _did_document_class().from_dict(raw)
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
    return _did_document_class().from_dict(cached)


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
        try:
            answer = _get(
                settings.HANDLE_RESOLVER_URL, "/xrpc/com.atproto.identity.resolveHandle", trusted=True,
                params={"handle": handle},
            )
        except IdentityError as exc:
            raise IdentityError(f"could not reach the handle resolver: {exc}") from None
        if answer.status != 200:
            raise IdentityError(f"the handle {handle} does not resolve (HTTP {answer.status})")
        body = answer.json()
        did = body.get("did", "") if isinstance(body, dict) else ""
    else:
        did = _did_in_dns(handle) or _did_at_well_known(handle)
    if not isinstance(did, str) or not is_did(did):
        raise IdentityError(f"the handle {handle} does not resolve to a DID")
    return did


def _did_in_dns(handle):
    """The DID in the handle's `_atproto` TXT record ("did=..."), asked of the system's resolver."""
    import dns.exception
    import dns.resolver

    try:
        answers = dns.resolver.resolve(f"_atproto.{handle}", "TXT", lifetime=DNS_SECONDS)
    except dns.exception.DNSException:
        return ""
    for answer in answers:
        for text in answer.strings:
            if text.startswith(b"did="):
                return text[len(b"did="):].decode("utf-8", "replace")
    return ""


def _did_at_well_known(handle):
    try:
        answer = _get(f"https://{handle}", "/.well-known/atproto-did")
    except IdentityError:
        return ""
    lines = answer.content.decode("utf-8", "replace").splitlines() if answer.status == 200 else []
    return lines[0].strip() if lines else ""


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
