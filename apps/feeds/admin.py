"""Feeds in the admin: their definitions, whether and when their lists were computed, and a preview
of the first page as people would see it."""

import orjson
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.urls import path
from django.utils import timezone
from django.utils.timesince import timesince

from . import preview, rules, snapshots
from .forms import RULE_FIELDS, FeedForm, RulesForm
from .models import Feed, Kind
from .registry import FeedSpec


@admin.register(Feed)
class FeedAdmin(admin.ModelAdmin):
    list_display = ["alias", "display_name", "kind", "enabled", "listed", "private", "label", "post_count",
                    "last_computed"]
    list_filter = ["kind", "enabled", "listed", "private"]
    search_fields = ["alias", "display_name", "description"]
    readonly_fields = ["uri", "created_at", "updated_at", "post_count", "last_computed", "first_page"]
    actions = ["recompute", "publish", "unpublish"]
    form = FeedForm
    change_form_template = "admin/feeds/feed/change_form.html"

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ["alias", "uri", "kind", "display_name", "description", "enabled", "listed"]}),
            ("Algorithm", {"fields": ["parameters", "label", "pinned_posts"]}),
            ("Rules", {"fields": RULE_FIELDS, "description": "Rules feeds: the posts they show. "
                       "The preview below follows what you type; saving publishes it."}),
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

    def get_urls(self):
        preview_url = path("rules-preview/", self.admin_site.admin_view(self.rules_preview),
                           name="feeds_feed_rules_preview")
        return [preview_url, *super().get_urls()]

    def rules_preview(self, request):
        """The first page and the number of posts the rules typed in the form (not yet saved) choose."""
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        if not (self.has_change_permission(request) or self.has_add_permission(request)):
            raise PermissionDenied
        form = RulesForm(request.POST)
        context = {"errors": [], "posts": [], "limit": preview.PREVIEW_POSTS}
        chosen = form.typed_rules() if form.is_valid() else None
        if chosen is None:
            context["errors"] = [f"{form.fields[name].label or name}: {' '.join(errors)}"
                                 for name, errors in form.errors.items()]
        else:
            checked = rules.validate(chosen)
            parameters = self._typed_parameters(request.POST.get("parameters", ""))
            items = rules.matching(checked, parameters, limit=preview.PREVIEW_POSTS)
            posts = preview.posts_shown(items, checked["hours"])
            context.update(posts=[{**post, "link": preview.link(post["uri"])} for post in posts],
                           count=rules.count_matching(checked, parameters), rules=checked)
        return HttpResponse(render_to_string("admin/feeds/feed/rules_preview.html", context))

    @staticmethod
    def _typed_parameters(text):
        """The rules kind's parameters with the overrides typed in the form, when they are valid."""
        feed = Feed(kind=Kind.RULES)
        try:
            feed.parameters = orjson.loads(text or "{}")
            feed.clean()
        except (orjson.JSONDecodeError, ValidationError):
            feed.parameters = {}
        return feed.effective_parameters()

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
