"""Members of a Bluesky list, read from the list owner's repository (the seed's /list/members)."""

from skyline.atproto import identity, outbound
from skyline.atproto.ratelimit import RateLimiter
from skyline.atproto.repos import RepoError, fetch_repo, record_json
from skyline.atproto.xrpc import PdsError
from skyline.errors import Kind

from .links import LinkError, at_uri_for_link, is_rkey, parse_at_uri, resolve_identifier

LIST = "app.bsky.graph.list"
LIST_ITEM = "app.bsky.graph.listitem"
# Whole-repo downloads are heavy for the PDS and for us: one every 2 seconds per process (the seed's).
REPO_CHECKOUTS = RateLimiter(0.5)
CHECKOUT_WAIT_SECONDS = 30


def _list_uri(uri):
    """at://<did>/app.bsky.graph.list/<rkey> for an at-URI or a bsky.app link to a list."""
    if uri.startswith("https://"):
        at_uri = at_uri_for_link(uri)
        if f"/{LIST}/" not in at_uri:
            raise LinkError(Kind.INVALID, "Error parsing URI: not a link to a list")
        return at_uri
    try:
        authority, collection, rkey = parse_at_uri(uri)
    except LinkError:
        raise LinkError(Kind.INVALID, "Error parsing URI: not an at-URI or a bsky.app list link") from None
    if collection != LIST or rkey is None or not is_rkey(rkey):
        raise LinkError(Kind.INVALID, f"Error parsing URI: not a {LIST} record")
    return f"at://{resolve_identifier(authority)}/{LIST}/{rkey}"


def list_members(uri):
    """{"members": [DIDs in repo order, once each], "list": the list record, or {} if it is gone}."""
    list_uri = _list_uri(uri)
    did, rkey = list_uri[len("at://") :].split("/")[0], list_uri.rsplit("/", 1)[1]
    try:
        with outbound.calling_out():
            if not REPO_CHECKOUTS.wait(timeout=CHECKOUT_WAIT_SECONDS):
                raise LinkError(Kind.TOO_MANY, "too many repositories are being read; try again shortly")
            return _members(fetch_repo(did), list_uri, rkey)
    except outbound.Busy as exc:
        raise LinkError(Kind.BUSY, str(exc)) from None
    except identity.IdentityError as exc:
        raise LinkError(Kind.UPSTREAM, f"could not find the PDS of {did}: {exc}") from None
    except (PdsError, RepoError) as exc:
        raise LinkError(Kind.UPSTREAM, f"Error getting repo: {exc}") from None


def _members(repo, list_uri, rkey):
    members, record = [], {}
    for collection, record_rkey, value in repo.records(LIST):
        if collection == LIST and record_rkey == rkey:
            record = record_json(value)
        elif (
            collection == LIST_ITEM
            and value.get("list") == list_uri
            and identity.is_did(value.get("subject"))
        ):
            members.append(value["subject"])
    return {"members": list(dict.fromkeys(members)), "list": record}
