from django.contrib import admin, messages

from . import snapshots
from .models import Feed
from .registry import FeedSpec


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    list_display = ["alias", "display_name", "kind", "enabled", "private", "label"]
    list_filter = ["kind", "enabled", "private"]
    search_fields = ["alias", "display_name", "description"]
    readonly_fields = ["uri", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["alias", "uri", "kind", "display_name", "description", "enabled"]}),
        ("Algorithm", {"fields": ["parameters", "label", "pinned_posts"]}),
        ("Access", {"fields": ["private", "placeholder"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["recompute"]

    @admin.action(description="Recompute the selected feeds now")
    def recompute(self, request, queryset):
        for feed in queryset:
            snapshots.refresh(FeedSpec.of(feed), force=True)
        self.message_user(request, f"Recomputed {queryset.count()} feed(s).", messages.SUCCESS)
