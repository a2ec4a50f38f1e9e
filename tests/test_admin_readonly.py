"""ClickHouse-backed models shown in the admin are read-only there: a form must never issue an ALTER."""

import pytest
from clickhouse_backend.models import ClickhouseModel
from django.contrib import admin
from django.test import RequestFactory

pytestmark = pytest.mark.django_db


def test_no_clickhouse_model_can_be_added_changed_or_deleted_in_the_admin(admin_user):
    request = RequestFactory().get("/admin/")
    request.user = admin_user
    for model, model_admin in admin.site._registry.items():
        if issubclass(model, ClickhouseModel):
            assert not model_admin.has_add_permission(request), model
            assert not model_admin.has_change_permission(request), model
            assert not model_admin.has_delete_permission(request), model
