"""`manage.py seed_feeds`: create the feeds bsky-experiments served, so its feed URIs keep answering."""

from django.core.management.base import BaseCommand

from apps.accounts.models import Label
from apps.feeds.defaults import create_seed_feeds
from apps.feeds.models import Feed


class Command(BaseCommand):
    help = (
        "Create bsky-experiments' feeds: the community feeds a-mpls (private, label mpls) and cl-tqsp "
        "(label tqsp), the static feeds bangers and at-bangers, and its ten retired aliases, which answer "
        "but are not listed. Feeds that exist are left alone."
    )

    def handle(self, *args, **options):
        created = create_seed_feeds(Feed, Label)
        for alias in created:
            self.stdout.write(f"created {alias}")
        self.stdout.write(f"{len(created)} feed(s) created")
