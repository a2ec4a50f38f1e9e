from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class FeedsConfig(AppConfig):
    name = "apps.feeds"

    def ready(self):
        from .models import Feed

        post_save.connect(_feed_changed, sender=Feed, dispatch_uid="feeds.feed_changed")
        post_delete.connect(_feed_changed, sender=Feed, dispatch_uid="feeds.feed_deleted")


def _feed_changed(sender, instance, **kwargs):
    """A saved feed is served as saved from its next request on, not after the caches expire."""
    from .registry import forget_served_feeds
    from .snapshots import forget

    forget_served_feeds()
    forget(instance.alias)
