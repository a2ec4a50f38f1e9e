"""The feeds being served, as plain data cached for every process, and the label memberships they check.

A request must not query the relational store: the enabled feeds are read once into `FeedSpec`s
and kept in Django's cache (shared through Redis when configured) until a feed is saved or
deleted. Label memberships are cached for the feed's refresh interval, so a member added or
removed in the admin counts within that interval.
"""

import secrets
from dataclasses import dataclass, replace

from django.core.cache import cache

from apps.accounts.models import ActorLabel

from .models import PIN, Feed, post_uris
from .rules import SignInRequired, digest

REGISTRY_KEY = "feeds:registry"
TOKEN_KEY = "feeds:registry:token"
REGISTRY_TTL = 300
# (token, feeds) as this process last read them from the cache.
_local = (None, None)


@dataclass(frozen=True)
class FeedSpec:
    alias: str
    uri: str
    kind: str
    parameters: dict
    private: bool
    listed: bool
    label_id: int | None
    pinned: tuple
    placeholder: tuple
    # Defaults kept on the class, so specs cached before these fields existed still read as no rules.
    rules: dict | None = None
    viewer: str | None = None

    @classmethod
    def of(cls, feed):
        return cls(
            alias=feed.alias,
            uri=feed.uri,
            kind=feed.kind,
            parameters=feed.effective_parameters(),
            private=feed.private,
            listed=feed.listed,
            label_id=feed.label_id,
            pinned=tuple({"post": uri, "reason": PIN} for uri in post_uris(feed.pinned_posts)),
            placeholder=tuple({"post": uri} for uri in post_uris(feed.placeholder)),
            rules=feed.rules or {},
        )

    @property
    def refresh_seconds(self):
        return self.parameters.get("refresh_seconds", 60)

    def for_viewer(self, viewer):
        """The spec of the list `viewer` sees: a feed of followed accounts has one list per viewer,
        kept under its own name (which changes with the definition) so each viewer pages their own."""
        if not (self.rules or {}).get("followed_only"):
            return self
        if viewer is None:
            raise SignInRequired("this feed shows posts from the accounts you follow: sign in to see it")
        return replace(self, alias=f"{self.alias}~{digest(self.rules, self.parameters)}~{viewer}", viewer=viewer)

    def visible_to(self, viewer):
        """Whether `viewer` (a DID, or None when anonymous) sees this feed's posts."""
        return not self.private or (viewer is not None and viewer in label_members(self.label_id, self.refresh_seconds))


def served_feeds():
    """The enabled feeds by alias (listed or not), in the order describeFeedGenerator lists them.

    Every request asks, so each process keeps the last list it read beside the short token the
    cache holds for it: a request reads the token (a few bytes) and reuses the list while the
    token is the same, instead of unpickling every feed. A save, a delete, the TTL or a cleared
    cache changes or drops the token, and the next request reads the list afresh.
    """
    global _local
    token = cache.get(TOKEN_KEY)
    if token is not None and token == _local[0]:
        return _local[1]
    cached = cache.get(REGISTRY_KEY) if token is not None else None
    if cached is None or cached[0] != token:
        feeds = {feed.alias: FeedSpec.of(feed) for feed in Feed.objects.filter(enabled=True)}
        cached = (secrets.token_hex(8), feeds)
        cache.set_many({REGISTRY_KEY: cached, TOKEN_KEY: cached[0]}, REGISTRY_TTL)
    _local = cached
    return cached[1]


def forget_served_feeds():
    cache.delete_many([TOKEN_KEY, REGISTRY_KEY])


def label_members(label_id, ttl):
    """The DIDs holding the label, as of at most `ttl` seconds ago."""
    key = f"feeds:members:{label_id}"
    members = cache.get(key)
    if members is None:
        members = frozenset(ActorLabel.objects.filter(label_id=label_id).values_list("did", flat=True))
        cache.set(key, members, ttl)
    return members
