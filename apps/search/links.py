"""at:// URIs and bsky.app links, both ways, strictly validated (the seed's /redir and /list/members).

Only at-URIs of the shape at://<did or handle>[/<collection>[/<rkey>]] are accepted, and a redirect
always goes to https://bsky.app with parts that passed validation, so /redir cannot be made to
send anyone elsewhere.
"""

from urllib.parse import urlsplit

from skyline.atproto import identity, syntax
from skyline.atproto.syntax import FEED_GENERATOR, LIST, POST, STARTER_PACK, is_rkey
from skyline.errors import Kind, Refused

# bsky.app path word for each collection it shows
APP_KINDS = {POST: "post", FEED_GENERATOR: "feed", LIST: "lists"}
KIND_COLLECTIONS = {kind: collection for collection, kind in APP_KINDS.items()}


class LinkError(Refused):
    """A URI or link that cannot be used: `kind` says why (skyline/errors.py)."""


def is_identifier(value):
    return identity.is_did(value) or identity.is_handle(value)


def parse_at_uri(value):
    """(authority, collection or None, rkey or None) of an at-URI; LinkError (INVALID) if it is not one."""
    parsed = syntax.parse_at_uri(value)
    if parsed is None or not is_identifier(parsed[0]):
        raise LinkError(Kind.INVALID, "invalid atUri")
    return parsed


def bsky_app_url(at_uri):
    """The bsky.app page that shows what `at_uri` names."""
    authority, collection, rkey = parse_at_uri(at_uri)
    if collection is None:
        return f"https://bsky.app/profile/{authority}"
    if rkey is None:
        raise LinkError(Kind.INVALID, "invalid atUri")
    if collection in APP_KINDS:
        return f"https://bsky.app/profile/{authority}/{APP_KINDS[collection]}/{rkey}"
    if collection == STARTER_PACK:
        return f"https://bsky.app/starter-pack/{authority}/{rkey}"
    raise LinkError(Kind.INVALID, "invalid atUri")


def resolve_identifier(value):
    """The DID of a handle or DID that exists; LinkError INVALID if malformed, NOT_FOUND if not found."""
    if not is_identifier(value):
        raise LinkError(Kind.INVALID, f"{value!r} is not a handle or DID")
    try:
        if identity.is_did(value):
            identity.did_document(value)
            return value
        return identity.resolve_handle(value)
    except identity.IdentityError as exc:
        raise LinkError(Kind.NOT_FOUND, f"could not resolve {value}: {exc}") from None


def at_uri_for_link(url):
    """The at-URI (with a DID) of a bsky.app link to a post, feed, list or starter pack; for a link
    to a profile, the DID alone (not an at-URI).

    The host is not checked, so links to staging or self-hosted app instances work too.
    """
    segments = [segment for segment in urlsplit(url).path.split("/") if segment]
    if len(segments) < 2:
        raise LinkError(Kind.INVALID, "unsupported url")
    if segments[0] == "profile" and len(segments) == 2:
        return resolve_identifier(segments[1])
    if segments[0] == "profile" and len(segments) == 4 and segments[2] in KIND_COLLECTIONS:
        collection = KIND_COLLECTIONS[segments[2]]
    elif segments[0] == "starter-pack" and len(segments) == 3:
        collection = STARTER_PACK
    else:
        raise LinkError(Kind.INVALID, "unsupported url")
    rkey = segments[-1]
    if not is_rkey(rkey):
        raise LinkError(Kind.INVALID, "unsupported url")
    return f"at://{resolve_identifier(segments[1])}/{collection}/{rkey}"
