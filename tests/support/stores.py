"""The two stores the tests run against, and a ClickHouse that is down."""

import socket

import pytest
from django.db import connections

from skyline.db.clickhouse.base import DatabaseWrapper as ServerWrapper

BOTH_STORES = ["default", "clickhouse"]


def query(sql, params=None):
    """Rows of one statement on the ClickHouse test database."""
    with connections["clickhouse"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def clickhouse_down():
    """Swap the ClickHouse connection for one to a server that is not there; calling the fixture's
    value (or the end of the test) puts the real one back."""
    healthy = connections["clickhouse"]
    settings_dict = {
        **healthy.settings_dict, "ENGINE": "skyline.db.clickhouse", "HOST": "127.0.0.1", "PORT": closed_port(),
        "NAME": "default", "USER": "default", "PASSWORD": "",
        "OPTIONS": {"connect_timeout": 1, "send_receive_timeout": 1, "sync_request_timeout": 1},
    }
    connections["clickhouse"] = ServerWrapper(settings_dict, alias="clickhouse")

    def restore():
        if connections["clickhouse"] is not healthy:
            connections["clickhouse"].close()
            connections["clickhouse"] = healthy

    yield restore
    restore()
