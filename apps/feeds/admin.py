from django.conf import settings
from django.contrib import admin, messages

from . import snapshots
from .models import Feed
from .publishing import PublishError, publish_feeds, unpublish_feeds
from .registry import FeedSpec


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    list_display = ["alias", "display_name", "kind", "enabled", "listed", "private", "label"]
    list_filter = ["kind", "enabled", "listed", "private"]
    search_fields = ["alias", "display_name", "description"]
    readonly_fields = ["uri", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["alias", "uri", "kind", "display_name", "description", "enabled", "listed"]}),
        ("Algorithm", {"fields": ["parameters", "label", "pinned_posts"]}),
        ("Access", {"fields": ["private", "placeholder"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["recompute", "publish", "unpublish"]

    @admin.action(description="Recompute the selected feeds now")
    def recompute(self, request, queryset):
        for feed in queryset:
            snapshots.refresh(FeedSpec.of(feed), force=True)
        self.message_user(request, f"Recomputed {queryset.count()} feed(s).", messages.SUCCESS)

    @admin.action(description="Publish the selected feeds on Bluesky")
    def publish(self, request, queryset):
        feeds = list(queryset.filter(enabled=True))
        if len(feeds) < queryset.count():
            self.message_user(request, "Disabled feeds are not published.", messages.WARNING)
        if feeds:
            self._publishing(request, "Published", publish_feeds, feeds, avatar_path=settings.FEED_AVATAR or None)

    @admin.action(description="Remove the selected feeds from Bluesky")
    def unpublish(self, request, queryset):
        self._publishing(request, "Removed", unpublish_feeds, list(queryset))

    def _publishing(self, request, done, action, feeds, **options):
        """Run publish_feeds or unpublish_feeds with the configured app password, and say how it went."""
        try:
            uris = action(feeds, settings.FEED_ACTOR_APP_PASSWORD, **options)
        except PublishError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{done} {len(uris)} feed(s): {', '.join(uris)}", messages.SUCCESS)
