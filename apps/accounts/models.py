"""Community labels (which accounts belong to which community) and the API keys that manage them."""

import hmac
import re
import secrets

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.utils import timezone
from django.utils.crypto import salted_hmac



class MembershipError(Exception):
    """An account that cannot be added or removed; the message says why, for the person who asked."""


_CLASS_NAME = re.compile(r": [A-Z][A-Za-z]*(Error|Exception)$")


def _unreachable(exc):
    """Whether an identity failure came from the network (a server that could not be reached or
    did not answer in time), found in the exceptions it was raised from."""
    from skyline.atproto import outbound  # httpx: loaded by the roles that call out, not by every command
    while exc is not None:
        if isinstance(exc, (outbound.Unreachable, OSError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def resolve_actor(identifier):
    """(did, handle) for a DID or a handle given by a person.

    A DID is taken as given: the membership is the DID, and its handle is kept only if it can be
    verified now ('' otherwise, e.g. while the PLC directory is unreachable; the member list shows
    the handle Skyline has indexed). A handle must resolve to a DID that claims it back.
    """
    from skyline.atproto import identity  # the atproto SDK: loaded by the roles that resolve names, not all

    value = identifier.strip().lstrip("@")
    if value.startswith("did:"):
        if not identity.is_did(value):
            raise MembershipError(f"{identifier}: not a valid DID (did:plc:… or did:web:…)")
        try:
            return value, identity.verified_handle(value) or ""
        except identity.IdentityError:
            return value, ""
    if not identity.is_handle(value):
        raise MembershipError(f"{identifier}: neither a DID nor a valid handle")
    try:
        return identity.resolve_handle(value), value.lower()
    except identity.IdentityError as exc:
        if _unreachable(exc):
            raise MembershipError(
                f"{identifier}: the handle could not be checked: its server or the PLC directory did not answer. "
                "Try again later, or add the account by its DID.") from None
        # Errors name no exception classes: a person reads them.
        raise MembershipError(f"{identifier}: {_CLASS_NAME.sub('', str(exc))}") from None


class LabelQuerySet(models.QuerySet):
    def for_feed_name(self, name):
        """The label a feed name refers to: `mpls` or a feed-style alias `a-mpls` both mean label mpls.

        The seed matched names exactly on some endpoints and after the first '-' on others; here the
        exact name wins and the text after the first '-' is the fallback, everywhere.
        """
        name = (name or "").strip()
        candidates = [name] + ([name.split("-", 1)[1]] if "-" in name else [])
        found = {label.name: label for label in self.filter(name__in=candidates)}
        return next((found[candidate] for candidate in candidates if candidate in found), None)


class Label(models.Model):
    """A community. Its members' posts make the community's feeds."""

    name = models.SlugField(max_length=64, unique=True, help_text="e.g. mpls; used in feeds and API keys")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = LabelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def add(self, identifier, added_by=""):
        """Give the label to the account `identifier` (DID or handle): (membership, whether it is new)."""
        did, handle = resolve_actor(identifier)
        member, created = self.members.get_or_create(did=did, defaults={"handle": handle, "added_by": added_by})
        if not created and handle and member.handle != handle:
            member.handle = handle
            member.save(update_fields=["handle"])
        return member, created

    def members_matching(self, identifier):
        """The memberships of `identifier`: a DID as given (so an account that no longer resolves can
        still be removed), or a handle as stored, else as it resolves now."""
        value = identifier.strip().lstrip("@")
        if value.startswith("did:"):
            return self.members.filter(did=value)
        members = self.members.filter(handle=value.lower())
        return members if members.exists() else self.members.filter(did=resolve_actor(value)[0])

    def remove(self, identifier):
        """Take the label from `identifier`; how many memberships went (0 when it held none)."""
        return self.members_matching(identifier).delete()[0]


class ActorLabel(models.Model):
    """An account holding a label (a member of a community)."""

    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="members")
    did = models.CharField(max_length=255, db_index=True)
    handle = models.CharField(max_length=253, blank=True, help_text="as verified when the member was added")
    created_at = models.DateTimeField(auto_now_add=True)
    added_by = models.CharField(max_length=150, blank=True, help_text="the admin user, API key or command")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["label", "did"], name="one_membership_per_label")]
        ordering = ["-created_at"]
        verbose_name = "member"

    def __str__(self):
        return f"{self.handle or self.did} in {self.label}"


KEY_PREFIX = "sky_"
_CACHE_TTL = 60
_LAST_USED_GRANULARITY = 60


def _digest(plain_key):
    """Keyed hash of a key: a leaked table alone cannot be checked against guesses (SECRET_KEY is needed)."""
    return salted_hmac("apps.accounts.APIKey", plain_key, algorithm="sha256").hexdigest()


def key_lookup(text):
    """The lookup part of a plain key or of its shown prefix (sky_1a2b3c4d); '' when it has none.

    A key imported from bsky-experiments is any other text: its lookup is derived from it by a keyed
    hash, so it is found the same way without its text being stored.
    """
    text = text or ""
    if not text.startswith(KEY_PREFIX):
        return salted_hmac("apps.accounts.APIKey.lookup", text, algorithm="sha256").hexdigest()[:8] if text else ""
    lookup = text[len(KEY_PREFIX):len(KEY_PREFIX) + 8]
    return lookup if len(lookup) == 8 else ""


def _cache_key(lookup):
    return f"apikey:{lookup}"


class APIKeyQuerySet(models.QuerySet):
    def create_key(self, name, label=None, created_by=None):
        """A new key (scoped to `label`, or to every label when None) and its plain text, shown once."""
        key = self.model(name=name, label=label, created_by=created_by)
        plain = key.issue()
        key.save()
        return key, plain

    def import_key(self, plain_key, name, label=None):
        """Keep a key its holder already has (from bsky-experiments) working: (key, whether it is new)."""
        lookup = key_lookup(plain_key)
        existing = self.filter(lookup=lookup).first()
        if existing is not None:
            return existing, False
        key = self.create(name=name, label=label, lookup=lookup, digest=_digest(plain_key), imported=True)
        cache.delete(_cache_key(lookup))
        return key, True

    def authenticate(self, plain_key):
        """The live key whose plain text is `plain_key`, or None.

        Found by its lookup prefix (an indexed equality, not a scan) and checked with a constant-time
        comparison of the keyed hash. Hits are cached briefly; revoking a key drops its cache entry.
        """
        lookup = key_lookup(plain_key)
        if not lookup:
            return None
        entry = cache.get(_cache_key(lookup))
        if entry is None:
            key = self.select_related("label").filter(lookup=lookup, revoked_at__isnull=True).first()
            entry = key or ""
            cache.set(_cache_key(lookup), entry, _CACHE_TTL)
        if not entry or not hmac.compare_digest(entry.digest, _digest(plain_key)):
            return None
        entry.mark_used()
        return entry


class APIKey(models.Model):
    """A key for the label API (X-API-Key). Only a keyed hash of it is kept; the plain key is shown once."""

    name = models.CharField(max_length=100, help_text="who or what uses it, e.g. 'mpls moderators'")
    label = models.ForeignKey(
        # PROTECT: keys are revoked, never deleted, so a label with keys cannot be deleted under them.
        Label, null=True, blank=True, on_delete=models.PROTECT, related_name="api_keys",
        help_text="the one label this key may manage; empty: every label (admin-wide)",
    )
    lookup = models.CharField(max_length=8, unique=True, editable=False, help_text="the key's public prefix")
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    imported = models.BooleanField(
        default=False, editable=False, help_text="a key carried over from bsky-experiments, as its holder has it"
    )

    objects = APIKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def issue(self):
        """Give this unsaved key its secret. Returns the plain key, which is kept nowhere."""
        self.lookup = secrets.token_hex(4)
        plain = f"{KEY_PREFIX}{self.lookup}_{secrets.token_urlsafe(32)}"
        self.digest = _digest(plain)
        cache.delete(_cache_key(self.lookup))
        return plain

    @property
    def prefix(self):
        return f"{KEY_PREFIX}{self.lookup}"

    @property
    def scope(self):
        return self.label.name if self.label_id else "all labels"

    def allows(self, label):
        return self.label_id is None or self.label_id == label.pk

    def revoke(self):
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
        cache.delete(_cache_key(self.lookup))

    def mark_used(self):
        """Record the use, at most once a minute per key (a busy key must not write on every request)."""
        if cache.add(f"apikey:used:{self.lookup}", 1, _LAST_USED_GRANULARITY):
            self.last_used_at = timezone.now()
            APIKey.objects.filter(pk=self.pk).update(last_used_at=self.last_used_at)
