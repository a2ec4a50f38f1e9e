"""Publishing the feeds on Bluesky: one app.bsky.feed.generator record per feed.

A feed exists for the Bluesky app once the publishing account (FEED_ACTOR_DID) holds a generator
record at at://<FEED_ACTOR_DID>/app.bsky.feed.generator/<alias> naming this service (SERVICE_DID).
Publishing signs in at that account's PDS with an app password (used for the session only: never
stored, logged or shown), uploads the avatar image if one is given, and puts each feed's record
(putRecord replaces an earlier version, so publishing again updates names and descriptions).
Unpublishing deletes the records.
"""

import logging
from pathlib import Path

from django.conf import settings

from skyline.atproto import identity
from skyline.atproto.syntax import utc_text
from skyline.atproto.xrpc import PdsError, XrpcClient

logger = logging.getLogger(__name__)

GENERATOR = "app.bsky.feed.generator"
# What the lexicon accepts as a feed generator's avatar.
AVATAR_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
MAX_AVATAR_BYTES = 1_000_000


class PublishError(Exception):
    """Publishing could not start or a record could not be written; the message says why."""


def generator_record(feed, avatar=None):
    """The app.bsky.feed.generator record of `feed` (`avatar`: an uploaded blob object, or None)."""
    record = {
        "$type": GENERATOR,
        "did": settings.SERVICE_DID,
        "displayName": feed.display_name,
        "acceptsInteractions": True,
        "createdAt": utc_text(feed.created_at, "milliseconds"),
    }
    if feed.description:
        record["description"] = feed.description
    if avatar is not None:
        record["avatar"] = avatar
    return record


def _avatar_image(path):
    """(bytes, MIME type) of the avatar image at `path`."""
    mime_type = AVATAR_TYPES.get(Path(path).suffix.lower())
    if mime_type is None:
        raise PublishError(f"the avatar must be a .png or .jpg image, not {path}")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PublishError(f"cannot read the avatar {path}: {exc.strerror}") from None
    if len(data) > MAX_AVATAR_BYTES:
        raise PublishError(f"the avatar {path} is {len(data):,} bytes; Bluesky takes at most {MAX_AVATAR_BYTES:,}")
    return data, mime_type


class Publisher:
    """A signed-in session on the publishing account's PDS. Use as a context manager."""

    def __init__(self, app_password, identifier=None):
        self.did = settings.FEED_ACTOR_DID
        if not app_password:
            raise PublishError("an app password for the publishing account is needed (FEED_ACTOR_APP_PASSWORD)")
        try:
            pds = identity.pds_endpoint(self.did)
        except identity.IdentityError as exc:
            raise PublishError(
                f"FEED_ACTOR_DID ({self.did}) must be the Bluesky account that publishes the feeds: {exc}"
            ) from None
        try:
            self._client = XrpcClient(pds)
        except PdsError as exc:
            raise PublishError(f"cannot call the PDS of FEED_ACTOR_DID ({pds}): {exc}") from None
        try:
            session = self._client.create_session(identifier or self.did, app_password)
        except PdsError as exc:
            self._client.close()
            raise PublishError(
                f"could not sign in as {identifier or self.did} at {pds}: {exc.detail}"
            ) from None
        if session["did"] != self.did:
            self._client.close()
            raise PublishError(f"{identifier} is {session['did']}, not FEED_ACTOR_DID ({self.did})")
        self._token = session["accessJwt"]

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._client.close()

    def upload_avatar(self, data, mime_type):
        """The blob object of an uploaded image, for records to point at."""
        try:
            return self._client.upload_blob(self._token, data, mime_type)
        except PdsError as exc:
            raise PublishError(f"could not upload the avatar: {exc.detail}") from None

    def publish(self, feed, avatar=None):
        """Put `feed`'s generator record; its at-uri."""
        try:
            self._client.put_record(self._token, self.did, GENERATOR, feed.alias, generator_record(feed, avatar))
        except PdsError as exc:
            raise PublishError(f"could not publish {feed.alias}: {exc.detail}") from None
        logger.info("published feed %s", feed.uri)
        return feed.uri

    def unpublish(self, feed):
        """Delete `feed`'s generator record (already gone is fine); its at-uri."""
        try:
            self._client.delete_record(self._token, self.did, GENERATOR, feed.alias)
        except PdsError as exc:
            if not exc.says("Could not find record"):
                raise PublishError(f"could not unpublish {feed.alias}: {exc.detail}") from None
        logger.info("unpublished feed %s", feed.uri)
        return feed.uri


def publish_feeds(feeds, app_password, identifier=None, avatar_path=None):
    """Publish each of `feeds`; their at-uris."""
    image = _avatar_image(avatar_path) if avatar_path else None
    with Publisher(app_password, identifier) as publisher:
        avatar = publisher.upload_avatar(*image) if image else None
        return [publisher.publish(feed, avatar) for feed in feeds]


def unpublish_feeds(feeds, app_password, identifier=None):
    """Remove each of `feeds` from Bluesky; their at-uris."""
    with Publisher(app_password, identifier) as publisher:
        return [publisher.unpublish(feed) for feed in feeds]
