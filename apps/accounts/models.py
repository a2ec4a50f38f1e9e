"""Community labels: which accounts (DIDs) belong to which community."""

from django.db import models


class Label(models.Model):
    """A community. Its members' posts make the community's feeds."""

    name = models.SlugField(max_length=64, unique=True, help_text="e.g. mpls; used in feeds and API keys")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class ActorLabel(models.Model):
    """An account holding a label (a member of a community)."""

    label = models.ForeignKey(Label, on_delete=models.CASCADE, related_name="members")
    did = models.CharField(max_length=255, db_index=True)
    handle = models.CharField(max_length=253, blank=True, help_text="as verified when the member was added")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["label", "did"], name="one_membership_per_label")]
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.handle or self.did} in {self.label}"
