"""Skyline's URLs plus /probe, a view that needs ClickHouse, for the store-down tests."""

from django.db import connections
from django.http import HttpResponse
from django.urls import path

from skyline.urls import urlpatterns as skyline_urlpatterns


def needs_clickhouse(request):
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute("SELECT 1")
        return HttpResponse(str(cursor.fetchone()[0]))


urlpatterns = skyline_urlpatterns + [path("probe", needs_clickhouse)]
