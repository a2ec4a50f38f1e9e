"""Feeds in the admin: their definitions, whether and when their lists were computed, and a preview
of the first page as people would see it."""

from django.conf import settings
from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.timesince import timesince

from . import preview, snapshots
from .models import Feed
from .registry import FeedSpec


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    list_display = ["alias", "display_name", "kind", "enabled", "listed", "private", "label", "post_count",
                    "last_computed"]
    list_filter = ["kind", "enabled", "listed", "private"]
    search_fields = ["alias", "display_name", "description"]
    readonly_fields = ["uri", "created_at", "updated_at", "post_count", "last_computed", "first_page"]
    actions = ["recompute", "publish", "unpublish"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ["alias", "uri", "kind", "display_name", "description", "enabled", "listed"]}),
            ("Algorithm", {"fields": ["parameters", "label", "pinned_posts"]}),
            ("Access", {"fields": ["private", "placeholder"]}),
            ("History", {"fields": ["created_at", "updated_at"]}),
        ]
        if obj is not None:
            fieldsets.insert(1, ("List", {"fields": ["post_count", "last_computed", "first_page"]}))
        return fieldsets

    @admin.display(description="posts")
    def post_count(self, feed):
        found = preview.computed(feed.alias)
        return "–" if found is None else found[1]

    @admin.display(description="last computed")
    def last_computed(self, feed):
        found = preview.computed(feed.alias)
        if found is None:
            return "not yet (at its first request or the next scheduled refresh)"
        return f"{found[0]:%Y-%m-%d %H:%M:%S} UTC ({timesince(found[0], timezone.now())} ago)"

    @admin.display(description="first page")
    def first_page(self, feed):
        """The feed's first page as people would see it (computed now if it has no list yet)."""
        posts = [{**post, "link": preview.link(post["uri"])} for post in preview.first_page(feed)]
        return render_to_string("admin/feeds/feed/first_page.html",
                                {"feed": feed, "posts": posts, "limit": preview.PREVIEW_POSTS})

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
            self._publishing(request, "Published", "publish_feeds", feeds, avatar_path=settings.FEED_AVATAR or None)

    @admin.action(description="Remove the selected feeds from Bluesky")
    def unpublish(self, request, queryset):
        self._publishing(request, "Removed", "unpublish_feeds", list(queryset))

    def _publishing(self, request, done, action, feeds, **options):
        """Run publish_feeds or unpublish_feeds with the configured app password, and say how it went."""
        # Imported here: publishing loads the atproto SDK, and every command imports this module.
        from . import publishing

        try:
            uris = getattr(publishing, action)(feeds, settings.FEED_ACTOR_APP_PASSWORD, **options)
        except publishing.PublishError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{done} {len(uris)} feed(s): {', '.join(uris)}", messages.SUCCESS)
