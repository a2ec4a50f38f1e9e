"""Feed definitions (relational, managed in the admin) and the feed generator's analytics tables.

A feed is a record: its alias is the rkey of its `app.bsky.feed.generator` record, its kind picks
the algorithm and its parameters tune it. The analytics tables live in ClickHouse and are written
in batches by `analytics.py`, never on the request path.
"""

from clickhouse_backend import models as ch
from clickhouse_backend.models.functions import toYYYYMM
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import CompositePrimaryKey

from apps.accounts.models import Label
from skyline.atproto.syntax import POST, is_rkey, parse_record_uri

from .rules import validate as validate_rules

PIN = {"$type": "app.bsky.feed.defs#skeletonReasonPin"}


def _validate_alias(value):
    """An alias ends the feed's at-uri, so it is a record key."""
    if not is_rkey(value):
        raise ValidationError("An alias is a record key: letters, digits and . _ : ~ - only.")


def post_uris(text):
    """The post at-uris listed one per line in `text` (blank lines ignored)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _is_post_uri(uri):
    parts = parse_record_uri(uri)
    return parts is not None and parts[1] == POST


def _validate_post_uris(text):
    bad = [uri for uri in post_uris(text) if not _is_post_uri(uri)]
    if bad:
        raise ValidationError(f"Not a post at-uri: {bad[0]!r} (expected at://<did>/app.bsky.feed.post/<rkey>).")


class Kind(models.TextChoices):
    HOT = "hot", "Hot (likes decayed by age)"
    TOP = "top", "Top (most liked in a window)"
    LABEL = "label", "Community (authors holding a label)"
    STATIC = "static", "Static (pinned posts)"
    RULES = "rules", "Rules (words, hashtags, languages, authors…)"


# Each kind's parameters, with their defaults and the range an operator may set.
PARAMETERS = {
    Kind.HOT: {
        "hours": (24, 1, 72),
        "min_age_minutes": (5, 0, 1440),
        "min_likes": (15, 1, 1_000_000),
        "gravity": (1.8, 0.0, 10.0),
        "max_posts": (3000, 1, 10_000),
        "refresh_seconds": (60, 10, 86_400),
    },
    Kind.TOP: {
        "hours": (1, 1, 72),
        "min_likes": (11, 1, 1_000_000),
        "max_posts": (3000, 1, 10_000),
        "refresh_seconds": (60, 10, 86_400),
    },
    Kind.LABEL: {
        "hours": (72, 1, 72),
        "include_replies": (False, False, True),
        "max_posts": (3000, 1, 10_000),
        "refresh_seconds": (60, 10, 86_400),
    },
    Kind.STATIC: {},
    Kind.RULES: {
        "gravity": (1.8, 0.0, 10.0),
        "max_posts": (3000, 1, 10_000),
        "refresh_seconds": (60, 10, 86_400),
    },
}


class Feed(models.Model):
    """One feed this generator serves, at at://<FEED_ACTOR_DID>/app.bsky.feed.generator/<alias>."""

    alias = models.CharField(
        max_length=128, unique=True, validators=[_validate_alias],
        help_text="The rkey of the feed's app.bsky.feed.generator record, e.g. whats-hot",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    parameters = models.JSONField(
        default=dict, blank=True,
        help_text="Overrides of the kind's defaults, e.g. {\"min_likes\": 20, \"hours\": 12}",
    )
    display_name = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True, help_text="Disabled feeds answer UnknownFeed")
    listed = models.BooleanField(
        default=True,
        help_text="Listed in describeFeedGenerator; an unlisted feed still answers (e.g. a retired alias)",
    )
    private = models.BooleanField(default=False, help_text="Only viewers holding the label see the posts")
    label = models.ForeignKey(
        Label, on_delete=models.PROTECT, null=True, blank=True, related_name="feeds",
        help_text="Community feeds: whose posts; private feeds: who may see them",
    )
    pinned_posts = models.TextField(
        blank=True, validators=[_validate_post_uris],
        help_text="Static feeds: post at-uris, one per line, served pinned",
    )
    placeholder = models.TextField(
        blank=True, validators=[_validate_post_uris],
        help_text="Private feeds: post at-uris, one per line, shown to viewers without the label",
    )
    rules = models.JSONField(default=dict, blank=True, help_text="Rules feeds: the rules that choose its posts")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return self.alias

    @property
    def uri(self):
        return f"at://{settings.FEED_ACTOR_DID}/app.bsky.feed.generator/{self.alias}"

    def effective_parameters(self):
        """The kind's defaults with this feed's overrides applied."""
        defaults = {name: default for name, (default, _, _) in PARAMETERS.get(self.kind, {}).items()}
        return {**defaults, **(self.parameters or {})}

    def clean(self):
        errors = {}
        try:
            self._check_parameters()
        except ValidationError as exc:
            errors["parameters"] = exc.messages
        if self.kind == Kind.LABEL and not self.label_id:
            errors["label"] = "A community feed needs the label whose members' posts it shows."
        if self.private and not self.label_id:
            errors["label"] = "A private feed needs the label its viewers must hold."
        if self.kind == Kind.STATIC and not post_uris(self.pinned_posts):
            errors["pinned_posts"] = "A static feed needs at least one post."
        if self.kind == Kind.RULES:
            try:
                validate_rules(self.rules)
            except ValidationError as exc:
                errors["rules"] = [f"{name}: {message}" for name, messages in exc.message_dict.items()
                                   for message in messages]
        if errors:
            raise ValidationError(errors)

    def _check_parameters(self):
        if not isinstance(self.parameters, dict):
            raise ValidationError("Parameters are a JSON object.")
        known = PARAMETERS.get(self.kind, {})
        for name, value in self.parameters.items():
            if name not in known:
                allowed = ", ".join(known) or "none"
                raise ValidationError(f"Unknown parameter {name!r} for this kind (allowed: {allowed}).")
            default, low, high = known[name]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValidationError(f"{name} is true or false.")
                continue
            numeric = (int, float) if isinstance(default, float) else (int,)
            if isinstance(value, bool) or not isinstance(value, numeric) or not low <= value <= high:
                sort = "number" if isinstance(default, float) else "whole number"
                raise ValidationError(f"{name} must be a {sort} from {low} to {high}.")


class FeedRequest(ch.ClickhouseModel):
    """One getFeedSkeleton answer, for ad-hoc analysis (the seed's feed_request_analytics)."""

    pk = CompositePrimaryKey("feed_name", "requested_at", "user_did")
    feed_name = ch.StringField(low_cardinality=True)
    user_did = ch.StringField(help_text="empty for anonymous requests")
    limit_requested = ch.UInt16Field()
    has_cursor = ch.UInt8Field()
    latency_us = ch.UInt32Field()
    requested_at = ch.DateTime64Field(precision=6)
    time_us = ch.Int64Field()

    class Meta:
        db_table = "feed_request_analytics"
        engine = ch.MergeTree(order_by=("feed_name", "requested_at"), partition_by=toYYYYMM("requested_at"))


class FeedInteraction(ch.ClickhouseModel):
    """One app.bsky.feed.sendInteractions item: what a viewer did with a post a feed showed."""

    pk = CompositePrimaryKey("feed_uri", "received_at", "user_did")
    user_did = ch.StringField()
    feed_uri = ch.StringField(low_cardinality=True)
    item_uri = ch.StringField()
    event = ch.StringField(low_cardinality=True)
    feed_context = ch.StringField()
    req_id = ch.StringField()
    received_at = ch.DateTime64Field(precision=6)

    class Meta:
        db_table = "feed_interactions"
        engine = ch.MergeTree(order_by=("feed_uri", "received_at"), partition_by=toYYYYMM("received_at"))
