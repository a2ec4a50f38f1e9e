"""`manage.py publish_feeds`: write (or with --unpublish, delete) the feeds' records on Bluesky."""

import sys
from getpass import getpass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.feeds.models import Feed
from apps.feeds.publishing import PublishError, publish_feeds, unpublish_feeds


class Command(BaseCommand):
    help = (
        "Publish the enabled, listed feeds as app.bsky.feed.generator records in FEED_ACTOR_DID's repo, signing in "
        "with an app password (FEED_ACTOR_APP_PASSWORD); --unpublish deletes the records."
    )

    def add_arguments(self, parser):
        parser.add_argument("aliases", nargs="*", metavar="ALIAS",
                            help="only these feeds (default: every enabled, listed feed)")
        parser.add_argument("--unpublish", action="store_true", help="delete the records instead")
        parser.add_argument("--identifier", help="sign in with this handle or email (default FEED_ACTOR_DID)")
        parser.add_argument("--avatar", default=settings.FEED_AVATAR,
                            help="a .png or .jpg to use as every feed's avatar (default FEED_AVATAR)")

    def handle(self, *args, aliases, unpublish, identifier, avatar, **options):
        feeds = self._feeds(aliases, unpublish)
        password = settings.FEED_ACTOR_APP_PASSWORD
        if not password and sys.stdin.isatty():
            password = getpass(f"App password of {settings.FEED_ACTOR_DID}: ")
        try:
            if unpublish:
                uris = unpublish_feeds(feeds, password, identifier)
            else:
                uris = publish_feeds(feeds, password, identifier, avatar or None)
        except PublishError as exc:
            raise CommandError(str(exc)) from None
        for uri in uris:
            self.stdout.write(f"{'unpublished' if unpublish else 'published'} {uri}")

    def _feeds(self, aliases, unpublish):
        if not aliases:
            feeds = list(Feed.objects.filter(enabled=True, listed=True))
            if not feeds:
                raise CommandError("there are no enabled, listed feeds")
            return feeds
        found = {feed.alias: feed for feed in Feed.objects.filter(alias__in=aliases)}
        missing = [alias for alias in aliases if alias not in found]
        if missing:
            raise CommandError(f"no such feed: {', '.join(missing)}")
        disabled = [alias for alias in aliases if not found[alias].enabled]
        if disabled and not unpublish:
            raise CommandError(f"disabled feeds are not published: {', '.join(disabled)}")
        return [found[alias] for alias in dict.fromkeys(aliases)]
