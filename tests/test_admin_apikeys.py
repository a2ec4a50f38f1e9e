"""API keys in the admin: created with the plain key shown on one page only, revoked, never deleted."""

import re

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.db import connection

from apps.accounts.models import APIKey, Label
from tests.support.stores import BOTH_STORES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_cache")]

ADD_URL = "/admin/accounts/apikey/add/"
LIST_URL = "/admin/accounts/apikey/"


def every_stored_value():
    """All text in the relational store (keys, sessions, admin log): where a plain key must not be."""
    tables = ["accounts_apikey", "django_session", "django_admin_log"]
    with connection.cursor() as cursor:
        values = []
        for table in tables:
            cursor.execute(f"SELECT * FROM {table}")
            values.extend(str(value) for row in cursor.fetchall() for value in row)
    return " ".join(values)


def create_key(admin_client, **fields):
    """POST the add form; the redirect's target (the page that shows the key) is not fetched yet."""
    response = admin_client.post(ADD_URL, fields)
    assert response.status_code == 302
    return response


@pytest.mark.django_db(databases=BOTH_STORES)  # the admin index shows ClickHouse figures
def test_a_created_key_is_shown_once_and_stored_only_as_a_hash(admin_client):
    mpls = Label.objects.create(name="mpls")
    created = create_key(admin_client, name="mpls moderators", label=mpls.pk)
    key = APIKey.objects.get()
    assert created["Location"] == f"{LIST_URL}{key.pk}/created/"
    response = admin_client.get(created["Location"])
    plain = response.context["plain_key"]
    assert plain.startswith(f"sky_{key.lookup}_")
    assert f'<code id="api-key"' in response.text and plain in response.text
    assert "no-store" in response["Cache-Control"]
    assert (key.name, key.label, key.created_by.username) == ("mpls moderators", mpls, "admin")
    assert APIKey.objects.authenticate(plain) == key

    assert plain not in every_stored_value()
    for page in [LIST_URL, f"{LIST_URL}{key.pk}/change/", "/admin/"]:
        shown = admin_client.get(page)
        assert shown.status_code == 200
        assert plain not in shown.text
    assert f"{key.prefix}…" in admin_client.get(LIST_URL).text
    assert LogEntry.objects.get(object_id=str(key.pk)).action_flag == ADDITION


def test_a_key_needs_one_label_or_admin_wide(admin_client):
    mpls = Label.objects.create(name="mpls")
    for fields in [{"name": "none"}, {"name": "both", "label": mpls.pk, "admin_wide": "on"}]:
        response = admin_client.post(ADD_URL, fields)
        assert response.status_code == 200
        assert "Choose one label, or tick admin-wide (not both)." in response.text
    assert not APIKey.objects.exists()
    create_key(admin_client, name="admins", admin_wide="on")
    assert APIKey.objects.get().scope == "all labels"


def test_revoking_in_the_admin_stops_the_key_and_is_logged(admin_client):
    key, plain = APIKey.objects.create_key("old")
    assert APIKey.objects.authenticate(plain) == key
    response = admin_client.post(LIST_URL, {"action": "revoke", "_selected_action": [key.pk]}, follow=True)
    assert "1 API key(s) revoked." in response.text
    assert APIKey.objects.get().revoked_at is not None
    assert APIKey.objects.authenticate(plain) is None
    assert LogEntry.objects.get(object_id=str(key.pk)).action_flag == CHANGE


def test_keys_cannot_be_deleted_only_revoked(admin_client):
    key, _ = APIKey.objects.create_key("old")
    assert admin_client.get(f"{LIST_URL}{key.pk}/delete/").status_code == 403


def test_the_admin_is_for_staff_only(client, django_user_model):
    assert client.get(LIST_URL).status_code == 302
    django_user_model.objects.create_user("visitor", password="pw")
    client.login(username="visitor", password="pw")
    response = client.get(LIST_URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.post(ADD_URL, {"name": "x", "admin_wide": "on"}).status_code == 302
    assert not APIKey.objects.exists()


def test_reloading_the_page_that_showed_a_new_key_creates_no_other_key_and_shows_it_no_more(admin_client):
    created = create_key(admin_client, name="admins", admin_wide="on")
    first = admin_client.get(created["Location"])
    assert first.context["plain_key"] is not None
    key = APIKey.objects.get()
    reloaded = admin_client.get(created["Location"])
    assert reloaded.status_code == 200
    assert APIKey.objects.count() == 1
    assert first.context["plain_key"] not in reloaded.text
    text = " ".join(re.sub(r"</?code>", "", reloaded.text).split())
    assert (f"The API key “admins” (all labels, {key.prefix}…) was shown once, when it was created, and cannot be "
            "shown again: Skyline keeps only a hash of it. If it was not copied, revoke it and create another.") in text


def test_another_keys_page_does_not_show_a_waiting_new_key(admin_client):
    old, _ = APIKey.objects.create_key("old")
    created = create_key(admin_client, name="new", admin_wide="on")
    page = admin_client.get(f"{LIST_URL}{old.pk}/created/")
    assert page.context["plain_key"] is None
    assert admin_client.get(created["Location"]).context["plain_key"] is None  # taken out by the first look


def test_the_label_help_says_what_the_form_accepts(admin_client):
    form = admin_client.get(ADD_URL).text
    assert "for every label, leave it empty and tick admin-wide" in form
    assert "empty: every label" not in form
