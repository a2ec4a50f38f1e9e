"""ClickHouse-backed models shown in the admin are read-only there: a form must never issue an ALTER."""

import datetime
from importlib import import_module

import pytest
from clickhouse_backend.models import ClickhouseModel
from django.conf import settings
from django.contrib import admin
from django.db import connections
from django.test import RequestFactory

from apps.indexer.models import AccountStatus
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

ALICE = "did:plc:aliceaaaaaaaaaaaaaaaaaaa"
LIST_URL = "/admin/indexer/accountstatus/"


def test_no_clickhouse_model_can_be_added_changed_or_deleted_in_the_admin(admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    import_module(settings.ROOT_URLCONF)  # the admin modules register with the URLconf
    registered = [(model, model_admin) for model, model_admin in admin.site._registry.items()
                  if issubclass(model, ClickhouseModel)]
    assert AccountStatus in dict(registered)
    for model, model_admin in registered:
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request), model
        assert not model_admin.has_delete_permission(request), model
        assert model_admin.has_view_permission(request), model


def test_account_statuses_show_each_accounts_latest_event_and_cannot_be_edited(admin_client):
    moment = datetime.datetime(2026, 5, 25, 12, tzinfo=datetime.timezone.utc)
    columns = ["did", "seq", "changed_at", "time_us", "active", "status"]
    connections["clickhouse"].insert_rows("account_statuses", columns, [(ALICE, 1, moment, 10, 0, "takendown")])
    connections["clickhouse"].insert_rows(
        "account_statuses", columns, [(ALICE, 2, moment + datetime.timedelta(days=1), 20, 0, "deleted")]
    )
    page = admin_client.get(LIST_URL).content.decode()
    assert '<td class="field-status">deleted</td>' in page
    assert "takendown" not in page.split('id="result_list"')[1]
    assert admin_client.get(f"{LIST_URL}add/").status_code == 403
    assert admin_client.post(f"{LIST_URL}{ALICE}/delete/", {"post": "yes"}).status_code == 403
    assert AccountStatus.objects.settings(final=1).get(did=ALICE).status == "deleted"


def test_account_statuses_read_as_words_and_icons_not_0_and_1(admin_client):
    columns = ["did", "seq", "changed_at", "time_us", "active", "status"]
    moment = datetime.datetime(2026, 5, 25, 12, tzinfo=datetime.timezone.utc)
    connections["clickhouse"].insert_rows("account_statuses", columns, [(ALICE, 1, moment, 10, 0, "deactivated")])
    page = admin_client.get(LIST_URL).content.decode()
    assert "<h1>Select account status to view</h1>" in page
    assert "Account statuses" in page and "statuss" not in page
    assert '<td class="field-is_active"><img src="/static/admin/img/icon-no.svg" alt="False"></td>' in page
    assert '<a href="?active=1">Yes</a>' in page and '<a href="?active=0">No</a>' in page
    assert ALICE in admin_client.get(LIST_URL, {"active": "0"}).content.decode().split('id="result_list"')[1]
    assert ALICE not in admin_client.get(LIST_URL, {"active": "1"}).content.decode()
    detail = admin_client.get(f"{LIST_URL}{ALICE}/change/").content.decode()
    assert '<img src="/static/admin/img/icon-no.svg" alt="False">' in detail
