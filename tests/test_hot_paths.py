"""getFeedSkeleton's short way past the middleware: still counted, still guarded, still a 503 when a
store is down; and answered without sessions or cookies."""

import json
import logging
import os
import subprocess
import sys
import threading

import pytest
from django.conf import settings
from prometheus_client import REGISTRY

from tests.support.feed_fixtures import feed_uri, skeleton
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)
ROUTE = "/xrpc/app.bsky.feed.getFeedSkeleton"


def counted(status):
    labels = {"route": ROUTE, "method": "GET", "status": status}
    return REGISTRY.get_sample_value("skyline_http_requests_total", labels) or 0


def test_feed_requests_are_counted_under_their_route(client, default_feeds):
    answered, refused = counted("200"), counted("400")
    assert skeleton(client, "whats-hot").status_code == 200
    assert skeleton(client, "whats-hot", limit=0).status_code == 400
    assert (counted("200"), counted("400")) == (answered + 1, refused + 1)


def test_the_feed_answer_keeps_the_security_headers_and_sets_no_cookie(client, default_feeds):
    response = skeleton(client, "whats-hot")
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in response
    assert "Vary" not in response


def test_a_host_that_is_not_allowed_is_refused(client, default_feeds):
    response = client.get(ROUTE, {"feed": feed_uri("whats-hot")}, HTTP_HOST="skyline.attacker.example")
    assert response.status_code == 400


def test_only_get_is_answered(client, default_feeds):
    assert client.post(ROUTE, {"feed": feed_uri("whats-hot")}).status_code == 405


def test_a_store_that_is_down_gets_the_503_json_error(client, default_feeds, clickhouse_down):
    response = skeleton(client, "whats-hot")
    assert response.status_code == 503
    assert response.json() == {"error": "ServiceUnavailable", "message": "A data store is unavailable; try again shortly."}
    assert response["Retry-After"] == "5"
    clickhouse_down()
    assert skeleton(client, "whats-hot").status_code == 200


# The WSGI application gunicorn runs (skyline/wsgi.py) answers getFeedSkeleton in front of Django's
# handler; these call it as gunicorn does, and compare with Django's answers through the test client.


@pytest.fixture
def wsgi():
    """Call skyline.wsgi.application with a GET; (status, headers dict, body). As Django's test client
    does, the request signals leave the test's database connection open."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections
    from django.test import RequestFactory

    from skyline.hot_paths import HotPathApplication
    from skyline.wsgi import application

    assert isinstance(application, HotPathApplication)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)

    def call(path, method="GET", **extra):
        environ = getattr(RequestFactory(), method.lower())(path, **extra).environ
        started = []
        body = b"".join(application(environ, lambda status, headers: started.append((status, headers))))
        status, headers = started[0]
        return int(status.split()[0]), dict(headers), body

    yield call
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def feed_path(alias, **params):
    from urllib.parse import urlencode

    return f"{ROUTE}?{urlencode({'feed': feed_uri(alias), **params})}"


@pytest.mark.parametrize("params", [{}, {"limit": "0"}, {"cursor": "nonsense"}, {"feed": "at://nobody/x/y"}])
def test_the_wsgi_application_answers_as_django_does(client, default_feeds, wsgi, params):
    path = feed_path("whats-hot", **params)
    expected = client.get(path)
    status, headers, body = wsgi(path)
    assert (status, body) == (expected.status_code, expected.content)
    assert {name: value for name, value in headers.items() if name != "Content-Length"} == dict(expected.items())
    assert headers["Content-Length"] == str(len(body))


def test_the_wsgi_application_counts_the_request_under_its_route(default_feeds, wsgi):
    answered, refused = counted("200"), counted("400")
    assert wsgi(feed_path("whats-hot"))[0] == 200
    assert wsgi(feed_path("whats-hot", limit="0"))[0] == 400
    assert (counted("200"), counted("400")) == (answered + 1, refused + 1)


def test_the_wsgi_application_leaves_other_methods_and_hosts_to_django(default_feeds, wsgi):
    status, headers, body = wsgi(feed_path("whats-hot"), method="POST")
    assert status == 405
    assert headers["Allow"] == "GET"
    assert body == b'{"error": "InvalidRequest", "message": "method POST not allowed; use GET"}'
    assert wsgi(feed_path("whats-hot"), HTTP_HOST="skyline.attacker.example")[0] == 400


def test_a_host_that_is_not_allowed_is_one_warning_on_both_ways_in(client, default_feeds, wsgi, caplog):
    message = ("Invalid HTTP_HOST header: 'skyline.attacker.example'. "
               "You may need to add 'skyline.attacker.example' to ALLOWED_HOSTS.")
    expected = client.get(feed_path("whats-hot"), HTTP_HOST="skyline.attacker.example")
    status, headers, body = wsgi(feed_path("whats-hot"), HTTP_HOST="skyline.attacker.example")
    assert (status, body) == (expected.status_code, expected.content)
    assert (status, headers["Content-Type"]) == (400, "text/html; charset=utf-8")
    assert b"<title>Bad Request (400)</title>" in body
    records = [(record.name, record.levelno, record.getMessage(), record.exc_info)
               for record in caplog.records]
    assert records == [("django.security.DisallowedHost", logging.WARNING, message, None)] * 2  # one a way in
    assert "Traceback" not in caplog.text


def test_the_wsgi_application_answers_503_when_a_store_is_down(default_feeds, wsgi, clickhouse_down):
    status, headers, body = wsgi(feed_path("whats-hot"))
    assert (status, headers["Retry-After"], headers["X-Content-Type-Options"]) == (503, "5", "nosniff")
    assert body == b'{"error": "ServiceUnavailable", "message": "A data store is unavailable; try again shortly."}'


def in_a_new_thread(call):
    """What `call()` returns, called in a thread of its own (one with no database connection yet)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join()
    return result[0]


@pytest.fixture
def signals_sent():
    """The request signals sent from now on, as (signal name, thread name)."""
    from django.core.signals import request_finished, request_started

    sent = []

    def started(**kwargs):
        sent.append(("started", threading.current_thread().name))

    def finished(**kwargs):
        sent.append(("finished", threading.current_thread().name))

    request_started.connect(started)
    request_finished.connect(finished)
    yield sent
    request_started.disconnect(started)
    request_finished.disconnect(finished)


def test_a_page_read_from_the_caches_sends_no_request_signals(default_feeds, wsgi, signals_sent):
    assert wsgi(feed_path("whats-hot"))[0] == 200  # computes the list here; the next request reads it
    signals_sent.clear()
    assert in_a_new_thread(lambda: wsgi(feed_path("whats-hot"))[0]) == 200
    assert signals_sent == []


def test_a_thread_whose_connection_is_due_for_recycling_gets_the_signals(default_feeds, wsgi, signals_sent):
    from django.db import connections

    assert wsgi(feed_path("whats-hot"))[0] == 200

    def with_a_connection():
        connection = connections["default"]
        connection.ensure_connection()  # CONN_MAX_AGE 0: to be closed at the end of the request
        try:
            return wsgi(feed_path("whats-hot"))[0], threading.current_thread().name
        finally:
            connection.close()

    signals_sent.clear()
    status, thread = in_a_new_thread(with_a_connection)
    assert status == 200
    assert signals_sent == [("started", thread), ("finished", thread)]


def test_the_query_string_is_read_as_django_reads_it(client, default_feeds, wsgi):
    from urllib.parse import quote

    feed = quote(feed_uri("whats-hot"), safe="")
    queries = (f"feed={feed}&limit=2&limit=3", f"limit=&feed={feed}", f"feed={feed}&limit=%FF",
               f"feed={feed}&cursor=caf%C3%A9")
    for query in queries:
        path = f"{ROUTE}?{query}"
        expected = client.get(path)
        status, _, body = wsgi(path)
        assert (status, body) == (expected.status_code, expected.content), query


def test_a_query_with_too_many_fields_is_a_400_on_both_ways_in(client, default_feeds, wsgi, caplog):
    path = feed_path("whats-hot") + "&a=1" * settings.DATA_UPLOAD_MAX_NUMBER_FIELDS  # one field too many
    refused = counted("400")
    expected = {"error": "InvalidRequest", "message": "too many parameters; at most 1000 are accepted"}
    response = client.get(path)
    assert (response.status_code, response.json()) == (400, expected)
    status, headers, body = wsgi(path)
    assert (status, json.loads(body), headers["X-Content-Type-Options"]) == (400, expected, "nosniff")
    assert counted("400") == refused + 2
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


EXIT_AFTER_SERVING = """
import django
django.setup()
from django.db import connections
with connections["clickhouse"].cursor() as cursor:
    cursor.execute("SELECT 1")
import gc
import skyline.wsgi  # builds the application, which freezes what is loaded (the open session too)
assert gc.get_freeze_count() > 0
print("served")
"""


def test_a_process_that_built_the_application_exits_cleanly(tmp_path):
    # Frozen objects are never collected: without unfreezing them at exit, chDB's engine shut down
    # under a session still alive, printed a shutdown exception and crashed the process.
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "skyline.settings", "SKYLINE_DATA_DIR": str(tmp_path),
                   "PYTHONPATH": str(settings.BASE_DIR)}
    done = subprocess.run([sys.executable, "-c", EXIT_AFTER_SERVING], env=environment, capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout, "shutdown" in done.stderr) == (0, "served\n", False), done.stderr
