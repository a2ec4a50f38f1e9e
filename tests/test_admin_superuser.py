"""`manage.py ensure_superuser` (run by `make run`): the first admin from DJANGO_SUPERUSER_*, once."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.django_db


def test_the_first_superuser_comes_from_the_settings_and_is_never_reset(settings, capsys, client):
    settings.SUPERUSER_USERNAME, settings.SUPERUSER_PASSWORD = "root", "first-password"
    settings.SUPERUSER_EMAIL = "root@example.test"
    call_command("ensure_superuser")
    assert capsys.readouterr().out == "Created the superuser root.\n"
    assert client.login(username="root", password="first-password")
    assert client.get("/admin/accounts/apikey/").status_code == 200

    settings.SUPERUSER_PASSWORD = "second-password"
    call_command("ensure_superuser")
    assert capsys.readouterr().out == ""
    assert get_user_model().objects.get().check_password("first-password")


def test_without_settings_it_says_how_and_creates_nothing(settings, capsys):
    settings.SUPERUSER_USERNAME = settings.SUPERUSER_PASSWORD = ""
    call_command("ensure_superuser")
    assert "set DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD" in capsys.readouterr().out
    assert not get_user_model().objects.exists()


def test_a_username_without_a_password_is_an_error(settings):
    settings.SUPERUSER_USERNAME, settings.SUPERUSER_PASSWORD = "root", ""
    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_PASSWORD is not"):
        call_command("ensure_superuser")
    assert not get_user_model().objects.exists()
