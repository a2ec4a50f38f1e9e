"""What `manage.py import_seed` has finished, so an interrupted import resumes where it stopped."""

from django.db import models


class ImportedChunk(models.Model):
    """One finished part of an import: a month of a firehose table, or the labels, keys or stats."""

    source = models.CharField(max_length=255, help_text="the old database: name, or host:port/name")
    table = models.CharField(max_length=64)
    chunk = models.CharField(max_length=32, help_text="a month (YYYYMM) of the table, or 'all'")
    rows = models.BigIntegerField(help_text="rows read from the old table")
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "table", "chunk"], name="one_import_per_chunk")]
        ordering = ["source", "table", "chunk"]

    def __str__(self):
        return f"{self.source} {self.table} {self.chunk}"
