"""Site statistics (a ClickHouse aggregate) and repo clean-up jobs (relational, one row per job)."""

import base64
import datetime
import uuid

from clickhouse_backend import models as ch
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models
from django.db.models import CompositePrimaryKey, Q
from django.utils import timezone

from skyline.atproto.syntax import utc_text


class AggregateColumn(models.Field):
    """A ClickHouse aggregate column (`type_sql`): filled by materialized views, read with -Merge."""

    def __init__(self, *args, type_sql, **kwargs):
        self.type_sql = type_sql
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["type_sql"] = self.type_sql
        return name, path, args, kwargs

    def db_type(self, connection):
        return self.type_sql


class DailyStat(ch.ClickhouseModel):
    """Per UTC day and metric: records created minus records deleted, and the accounts that created.

    Written only by the materialized views of migration 0002 as events are indexed; read by stats.py.
    """

    pk = CompositePrimaryKey("date", "metric_type")
    date = ch.DateField()
    metric_type = ch.StringField(low_cardinality=True)
    count = AggregateColumn(type_sql="SimpleAggregateFunction(sum, Int64)")
    actors = AggregateColumn(type_sql="AggregateFunction(uniqCombined(14), String)")

    class Meta:
        db_table = "daily_stats"
        engine = ch.AggregatingMergeTree(order_by=("date", "metric_type"))


class ImportedDailyStat(ch.ClickhouseModel):
    """Per UTC day and metric, what bsky-experiments' /stats showed (its daily_stats and
    daily_stats_backfill, summed as it summed them); written by `manage.py import_seed`.

    Plain numbers, not sketches: the seed's distinct counts cannot join Skyline's. A row per day and
    metric (a re-import replaces it).
    """

    pk = CompositePrimaryKey("date", "metric_type")
    date = ch.DateField()
    metric_type = ch.StringField(low_cardinality=True)
    count = ch.Int64Field()
    actors = ch.UInt64Field()

    class Meta:
        db_table = "daily_stats_imported"
        engine = ch.ReplacingMergeTree(order_by=("date", "metric_type"))


def _token_cipher():
    """Fernet keyed from SECRET_KEY (and its fallbacks, so a rotated key still decrypts old tokens)."""

    def fernet(secret):
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"skyline cleanup refresh tokens"
        )
        return Fernet(base64.urlsafe_b64encode(derived.derive(secret.encode())))

    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([fernet(secret) for secret in secrets])


class CleanupJobQuerySet(models.QuerySet):
    def running(self):
        return self.filter(state=CleanupJob.State.RUNNING)

    def due(self, now):
        """Running jobs whose next run has come and that no worker holds."""
        return (
            self.running()
            .filter(next_run_at__lte=now)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        )


class CleanupJob(models.Model):
    """A user's request to delete their old records, worked off over hours or days.

    The PDS refresh token is kept encrypted (Fernet, keyed from SECRET_KEY) and cleared as soon as
    the job ends. Progress is saved after every applyWrites call, so a failure loses nothing.
    """

    class State(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        ERRORED = "errored"

    EXPIRED_TOKEN = "ExpiredToken"
    ACCOUNT_GONE = "Could not find user info for account (account may have been deleted)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, verbose_name="job id")
    repo = models.CharField(max_length=2048, db_index=True, help_text="the account's DID")
    cleanup_types = models.JSONField(default=list)
    delete_older_than = models.DateTimeField()
    num_deleted = models.PositiveBigIntegerField(default=0)
    num_deleted_today = models.PositiveIntegerField(default=0)
    est_num_remaining = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RUNNING, db_index=True)
    error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_deleted_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(default=timezone.now, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    refresh_token_encrypted = models.TextField(blank=True, editable=False)

    objects = CleanupJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One running job per account, even when two requests race.
            models.UniqueConstraint(
                fields=["repo"], condition=Q(state="running"), name="one_running_cleanup_per_repo"
            ),
        ]

    def __str__(self):
        return f"clean-up {self.id} of {self.repo} ({self.job_state})"

    @property
    def job_state(self):
        """The seed's job_state string, e.g. 'errored: ExpiredToken'."""
        return f"{self.state}: {self.error}" if self.state == self.State.ERRORED else self.state

    @property
    def refresh_token(self):
        if not self.refresh_token_encrypted:
            return ""
        try:
            return _token_cipher().decrypt(self.refresh_token_encrypted.encode()).decode()
        except InvalidToken:
            return ""  # SECRET_KEY changed with no fallback: the job can only end as expired.

    @refresh_token.setter
    def refresh_token(self, token):
        self.refresh_token_encrypted = _token_cipher().encrypt(token.encode()).decode() if token else ""

    def status(self):
        """The seed's job object; the refresh token is never shown."""

        def stamp(value):
            return utc_text(value) if value else None

        return {
            "job_id": str(self.id),
            "repo": self.repo,
            "refresh_token": "",
            "cleanup_types": list(self.cleanup_types),
            "delete_older_than": stamp(self.delete_older_than),
            "num_deleted": self.num_deleted,
            "num_deleted_today": self.num_deleted_today,
            "est_num_remaining": self.est_num_remaining,
            "job_state": self.job_state,
            "created_at": stamp(self.created_at),
            "updated_at": stamp(self.updated_at),
            "last_deleted_at": stamp(self.last_deleted_at),
        }

    def claim(self, seconds):
        """Take the job for `seconds` unless another worker holds it; True when taken."""
        now = timezone.now()
        taken = (
            CleanupJob.objects.due(now)
            .filter(pk=self.pk)
            .update(lease_until=now + datetime.timedelta(seconds=seconds))
        )
        if taken:
            self.refresh_from_db()
        return bool(taken)

    def deletes_left_today(self, now, per_day):
        """How many more records may go today (UTC), resetting the day's count on a new UTC date."""
        if (
            self.last_deleted_at is None
            or self.last_deleted_at.astimezone(datetime.timezone.utc).date() != now.date()
        ):
            self.num_deleted_today = 0
        return max(per_day - self.num_deleted_today, 0)

    def _save_if_running(self, **fields):
        """Write `fields` unless the job stopped meanwhile (cancelled by its owner); True when written."""
        fields["updated_at"] = timezone.now()
        written = CleanupJob.objects.running().filter(pk=self.pk).update(**fields)
        for name, value in fields.items():
            setattr(self, name, value)
        return bool(written)

    def save_token(self, token):
        self.refresh_token = token
        return self._save_if_running(refresh_token_encrypted=self.refresh_token_encrypted)

    def record_deletes(self, count, remaining):
        """Save one applyWrites call's progress; False when the job is no longer running."""
        now = timezone.now()
        return self._save_if_running(
            num_deleted=self.num_deleted + count,
            num_deleted_today=self.num_deleted_today + count,
            est_num_remaining=remaining,
            last_deleted_at=now,
        )

    def schedule(self, seconds, remaining=None):
        """Release the job and set its next run `seconds` from now (or complete it when nothing is left)."""
        fields = {"lease_until": None, "next_run_at": timezone.now() + datetime.timedelta(seconds=seconds)}
        if remaining is not None:
            fields["est_num_remaining"] = remaining
            if remaining <= 0:
                fields.update(state=self.State.COMPLETED, refresh_token_encrypted="")
        return self._save_if_running(**fields)

    def fail(self, error):
        return self._save_if_running(
            state=self.State.ERRORED, error=error, refresh_token_encrypted="", lease_until=None
        )

    def cancel(self):
        """Stop the job and forget its token; False when it had already ended."""
        return self._save_if_running(state=self.State.CANCELLED, refresh_token_encrypted="", lease_until=None)
