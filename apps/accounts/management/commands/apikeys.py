"""`manage.py apikeys create|list|revoke`: label API keys from scripts. A new key is printed once."""

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import KEY_PREFIX, APIKey, Label, key_lookup


class Command(BaseCommand):
    help = "Create an API key (scoped to one label, or --admin for every label), list keys, or revoke them."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="action", required=True)
        create = commands.add_parser("create", help="create a key and print it (it is not shown again)")
        scope = create.add_mutually_exclusive_group(required=True)
        scope.add_argument("--label", help="the one label the key may manage")
        scope.add_argument("--admin", action="store_true", help="the key may manage every label")
        create.add_argument("--name", default="", help="who or what uses the key")
        commands.add_parser("list", help="list keys (prefix, scope, name, created, last used, revoked)")
        revoke = commands.add_parser("revoke", help="revoke keys by prefix (sky_xxxxxxxx) or whole key")
        revoke.add_argument("keys", nargs="+")

    def handle(self, *args, action, **options):
        getattr(self, f"_{action}")(**options)

    def _create(self, label, admin, name, **options):
        scope = None
        if not admin:
            scope = Label.objects.for_feed_name(label)
            if scope is None:
                raise CommandError(f"no label named {label!r}")
        key, plain = APIKey.objects.create_key(name or f"{scope or 'admin'} (manage.py)", label=scope)
        self.stderr.write(f"created {key.prefix} for {key.scope}; this is the only time the key is shown:")
        self.stdout.write(plain)

    def _list(self, **options):
        for key in APIKey.objects.select_related("label"):
            used = f"{key.last_used_at:%Y-%m-%dT%H:%M:%SZ}" if key.last_used_at else "never used"
            revoked = f"revoked {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if key.revoked_at else "active"
            self.stdout.write(
                f"{key.prefix}\t{key.scope}\t{key.name}\t{key.created_at:%Y-%m-%dT%H:%M:%SZ}\t{used}\t{revoked}"
            )

    def _revoke(self, keys, **options):
        for given in keys:
            lookup = key_lookup(given)
            key = APIKey.objects.filter(lookup=lookup).first() if lookup else None
            if key is None:
                raise CommandError(f"no API key {given[:len(KEY_PREFIX) + 8]!r}")
            key.revoke()
            self.stdout.write(f"revoked {key.prefix} ({key.scope})")
