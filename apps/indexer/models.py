"""The firehose tables, named and shaped as in the seed so an operator can move over.

Every table is a ReplacingMergeTree versioned by the Jetstream `time_us`, with a `deleted` flag.
A delete event carries only did + collection + rkey, so each table is sorted by exactly the
columns a tombstone has (the record's repo and rkey): the tombstone then replaces the row it
deletes, wherever the row came from. Tables are not partitioned by record time for the same
reason (a tombstone's time differs from the record's). Readers that need the truth read FINAL,
which hides replaced versions and deleted records.

`posts` and `likes`, which the feeds read by the hour, put the rkey first: record keys are TIDs
(times), so the rows of a window lie together and FINAL reads the window, not the history.
"""

from clickhouse_backend import models
from django.db import models as django_models
from django.db.models import CompositePrimaryKey
from django.db.models.functions import Now


class FirehoseTable(models.ClickhouseModel):
    created_at = models.DateTime64Field(precision=6)
    indexed_at = models.DateTime64Field(precision=6, db_default=Now())
    deleted = models.UInt8Field(default=0)
    time_us = models.Int64Field()

    class Meta:
        abstract = True


class RepoRecord(FirehoseTable):
    """Every commit of every collection: the latest operation on each record."""

    pk = CompositePrimaryKey("collection", "repo", "rkey")
    repo = models.StringField()
    collection = models.StringField(low_cardinality=True)
    rkey = models.StringField()
    operation = models.Enum8Field(choices=[(1, "create"), (2, "update"), (3, "delete")])
    record_json = models.StringField()

    class Meta:
        db_table = "repo_records"
        engine = models.ReplacingMergeTree(
            "time_us", "deleted", order_by=("collection", "repo", "rkey"), index_granularity=8192
        )
        indexes = [models.Index(fields=["created_at"], name="repo_records_created_at", type=models.MinMax(), granularity=1)]


class Post(FirehoseTable):
    pk = CompositePrimaryKey("did", "rkey")
    did = models.StringField()
    rkey = models.StringField()
    uri = models.StringField()
    text = models.StringField()
    langs = models.ArrayField(models.StringField(low_cardinality=True))
    has_embedded_media = models.UInt8Field(default=0)
    parent_uri = models.StringField()
    root_uri = models.StringField()

    class Meta:
        db_table = "posts"
        engine = models.ReplacingMergeTree("time_us", "deleted", order_by=("rkey", "did"))
        indexes = [
            models.Index(fields=["created_at"], name="posts_created_at", type=models.MinMax(), granularity=1),
            models.Index(fields=["uri"], name="posts_uri", type=models.BloomFilter(0.01), granularity=4),
            # Sorted by record key, an account's posts are spread over the table: this finds them.
            models.Index(fields=["did"], name="posts_did", type=models.BloomFilter(0.01), granularity=1),
        ]


class SubjectRecord(FirehoseTable):
    """A like or a repost: an actor's record pointing at a subject record by at-uri."""

    pk = CompositePrimaryKey("actor_did", "rkey")
    actor_did = models.StringField()
    rkey = models.StringField()
    subject_uri = models.StringField()
    subject_did = models.StringField()
    subject_collection = models.StringField(low_cardinality=True)
    subject_rkey = models.StringField()

    class Meta:
        abstract = True


class Like(SubjectRecord):
    class Meta:
        db_table = "likes"
        engine = models.ReplacingMergeTree("time_us", "deleted", order_by=("rkey", "actor_did"))
        indexes = [
            models.Index(fields=["created_at"], name="likes_created_at", type=models.MinMax(), granularity=1),
            models.Index(fields=["subject_uri"], name="likes_subject_uri", type=models.BloomFilter(0.01), granularity=4),
        ]


class Repost(SubjectRecord):
    class Meta:
        db_table = "reposts"
        engine = models.ReplacingMergeTree("time_us", "deleted", order_by=("actor_did", "rkey"))
        indexes = [
            models.Index(fields=["created_at"], name="reposts_created_at", type=models.MinMax(), granularity=1),
            models.Index(fields=["subject_uri"], name="reposts_subject_uri", type=models.BloomFilter(0.01), granularity=4),
        ]


class GraphRecord(FirehoseTable):
    """A follow or a block: an actor's record pointing at another account."""

    pk = CompositePrimaryKey("actor_did", "rkey")
    actor_did = models.StringField()
    rkey = models.StringField()
    target_did = models.StringField()

    class Meta:
        abstract = True


class Follow(GraphRecord):
    class Meta:
        db_table = "follows"
        engine = models.ReplacingMergeTree("time_us", "deleted", order_by=("actor_did", "rkey"))
        indexes = [
            models.Index(fields=["created_at"], name="follows_created_at", type=models.MinMax(), granularity=1),
            models.Index(fields=["target_did"], name="follows_target_did", type=models.BloomFilter(0.01), granularity=4),
        ]


class Block(GraphRecord):
    class Meta:
        db_table = "blocks"
        engine = models.ReplacingMergeTree("time_us", "deleted", order_by=("actor_did", "rkey"))
        indexes = [
            models.Index(fields=["created_at"], name="blocks_created_at", type=models.MinMax(), granularity=1),
            models.Index(fields=["target_did"], name="blocks_target_did", type=models.BloomFilter(0.01), granularity=4),
        ]


class RepoEvent(models.ClickhouseModel):
    """The latest Jetstream event of one kind for each DID (a newer time_us replaces the row)."""

    did = models.StringField(primary_key=True)
    seq = models.Int64Field()
    changed_at = models.DateTime64Field(precision=6)
    indexed_at = models.DateTime64Field(precision=6, db_default=Now())
    time_us = models.Int64Field()

    class Meta:
        abstract = True


class AccountStatus(RepoEvent):
    """The latest account event of each DID.

    An account that is deleted, taken down, deactivated or suspended stays in the tables (it may come
    back), so readers hide it through the `hidden_accounts` view instead.
    """

    active = models.UInt8Field()
    status = models.StringField(low_cardinality=True)

    class Meta:
        db_table = "account_statuses"
        engine = models.ReplacingMergeTree("time_us", order_by=("did",))


class Identity(RepoEvent):
    """The latest identity event of each DID; `handle` is '' when the event did not carry one."""

    handle = models.StringField()

    class Meta:
        db_table = "identities"
        engine = models.ReplacingMergeTree("time_us", order_by=("did",))


class RejectedEvent(models.ClickhouseModel):
    """The dead letters: firehose events the consumer could not index, kept raw for inspection."""

    pk = CompositePrimaryKey("reason", "received_at")
    received_at = models.DateTime64Field(precision=6)
    reason = models.StringField(low_cardinality=True)
    detail = models.StringField()
    raw = models.StringField()

    class Meta:
        db_table = "firehose_rejects"
        engine = models.MergeTree(order_by=("reason", "received_at"))


class FirehoseCursor(django_models.Model):
    """Where the consumer resumes when there is no Redis: the Jetstream time_us up to which every
    received event has been written."""

    name = django_models.CharField(max_length=64, primary_key=True)
    time_us = django_models.BigIntegerField()
    saved_at = django_models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "indexer_firehose_cursor"

    def __str__(self):
        return f"{self.name} at {self.time_us}"


class PlcOperation(models.ClickhouseModel):
    """One operation of the PLC directory's log, as its /export pages list them.

    Sorted by (did, cid): an operation's CID names it, so a page fetched twice (after a crash
    between writing it and saving the cursor) replaces its own rows. `nullified` is as the
    directory said when the page was fetched (a recovery can nullify an operation within 72 h).
    """

    pk = CompositePrimaryKey("did", "cid")
    did = models.StringField()
    cid = models.StringField()
    operation_type = models.StringField(low_cardinality=True)
    created_at = models.DateTime64Field(precision=6)
    handle = models.StringField()
    pds = models.StringField()
    nullified = models.UInt8Field(default=0)
    operation_json = models.StringField()
    indexed_at = models.DateTime64Field(precision=6, db_default=Now())
    time_us = models.Int64Field()

    class Meta:
        db_table = "plc_operations"
        engine = models.ReplacingMergeTree(order_by=("did", "cid"))
        indexes = [
            models.Index(fields=["handle"], name="plc_operations_handle", type=models.BloomFilter(0.01), granularity=4),
        ]


class PlcDidState(models.ClickhouseModel):
    """The latest operation of each DID that the directory has not nullified (filled by a view from
    plc_operations): its handle and PDS, or operation_type 'plc_tombstone' for a deleted DID."""

    did = models.StringField(primary_key=True)
    operation_type = models.StringField(low_cardinality=True)
    handle = models.StringField()
    pds = models.StringField()
    created_at = models.DateTime64Field(precision=6)
    time_us = models.Int64Field()

    class Meta:
        db_table = "plc_did_state"
        engine = models.ReplacingMergeTree("time_us", order_by=("did",))


class Profile(FirehoseTable):
    """The app.bsky.actor.profile record of each account, as the firehose carries it.

    Sorted by (did, rkey), what a delete event carries, so a deleted profile's tombstone replaces it.
    Avatar and banner are the CIDs of their blobs ('' when there is none).
    """

    pk = CompositePrimaryKey("did", "rkey")
    did = models.StringField()
    rkey = models.StringField()
    display_name = models.StringField()
    description = models.StringField()
    avatar_cid = models.StringField()
    banner_cid = models.StringField()

    class Meta:
        db_table = "profiles"
        engine = models.ReplacingMergeTree("time_us", "deleted", order_by=("did", "rkey"))


class KnownAccount(models.ClickhouseModel):
    """Every DID known to be an account: seen in the firehose (a commit, an identity or account
    event) or in the PLC directory. Filled by materialized views; one row per DID after merges."""

    did = models.StringField(primary_key=True)

    class Meta:
        db_table = "known_accounts"
        engine = models.ReplacingMergeTree(order_by=("did",))
