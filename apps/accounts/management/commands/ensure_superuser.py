"""`manage.py ensure_superuser`: create the first admin user from DJANGO_SUPERUSER_* (run by `make run`).

Idempotent: once any superuser exists it does nothing, so a password changed in the admin is never
reset by a restart.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Create the superuser named by DJANGO_SUPERUSER_USERNAME/PASSWORD/EMAIL if there is none yet."

    def handle(self, *args, **options):
        users = get_user_model()
        if users.objects.filter(is_superuser=True).exists():
            return
        username, password = settings.SUPERUSER_USERNAME, settings.SUPERUSER_PASSWORD
        if not username:
            self.stdout.write(
                "No admin user yet: set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD, "
                "or run `manage.py createsuperuser`."
            )
            return
        if not password:
            raise CommandError("DJANGO_SUPERUSER_USERNAME is set but DJANGO_SUPERUSER_PASSWORD is not")
        if users.objects.filter(**{users.USERNAME_FIELD: username}).exists():
            raise CommandError(f"the user {username} exists but is not a superuser; promote it in the admin")
        users.objects.create_superuser(username=username, email=settings.SUPERUSER_EMAIL, password=password)
        self.stdout.write(f"Created the superuser {username}.")
