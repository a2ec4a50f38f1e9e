"""What anonymous clients can cause at will is one WARNING line without a traceback, never an ERROR
that pages an operator, and the answer is Django's as before; a fault of Skyline's own is still an
ERROR with its traceback."""

import logging

import pytest
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.exception import response_for_exception
from django.test import Client, RequestFactory

from tests.support.feed_fixtures import feed_uri
from tests.support.stores import BOTH_STORES

pytestmark = pytest.mark.django_db(databases=BOTH_STORES)

# Django's own 400 page, as every refusal below is answered.
BAD_REQUEST = (b'\n<!doctype html>\n<html lang="en">\n<head>\n  <title>Bad Request (400)</title>\n</head>\n'
               b'<body>\n  <h1>Bad Request (400)</h1><p></p>\n</body>\n</html>\n')
TOO_MANY_FIELDS = "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."


def logged(caplog):
    """(logger, level, message, whether it carries a traceback) of every record, and no traceback text."""
    assert "Traceback" not in caplog.text
    return [(record.name, record.levelno, record.getMessage(), bool(record.exc_info or record.exc_text))
            for record in caplog.records]


@pytest.mark.parametrize("path", ["/", "/admin/login/", "/xrpc/app.bsky.feed.getFeedSkeleton"])
def test_a_host_that_is_not_allowed_is_a_400_and_one_warning(client, caplog, path):
    response = client.get(path, {"feed": feed_uri("whats-hot")}, HTTP_HOST="skyline.attacker.example")
    assert (response.status_code, response.content) == (400, BAD_REQUEST)
    message = ("Invalid HTTP_HOST header: 'skyline.attacker.example'. "
               "You may need to add 'skyline.attacker.example' to ALLOWED_HOSTS.")
    assert logged(caplog) == [("django.security.DisallowedHost", logging.WARNING, message, False)]


def test_a_login_form_with_too_many_fields_is_a_400_and_one_warning(client, caplog):
    fields = {f"field{number}": "x" for number in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    response = client.post("/admin/login/", fields)
    assert (response.status_code, response.content) == (400, BAD_REQUEST)
    assert logged(caplog) == [("django.security.TooManyFieldsSent", logging.WARNING, TOO_MANY_FIELDS, False)]


def test_a_page_query_with_too_many_fields_is_a_400_and_one_warning(client, caplog):
    response = client.get("/admin/login/?" + "&a=1" * (settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    assert (response.status_code, response.content) == (400, BAD_REQUEST)
    assert logged(caplog) == [("django.security.TooManyFieldsSent", logging.WARNING, TOO_MANY_FIELDS, False)]


def test_a_login_body_over_the_upload_limit_is_a_400_and_one_warning(client, caplog):
    body = b"username=" + b"a" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = client.post("/admin/login/", body, content_type="application/x-www-form-urlencoded")
    assert (response.status_code, response.content) == (400, BAD_REQUEST)
    assert logged(caplog) == [("django.security.RequestDataTooBig", logging.WARNING,
                               "Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.", False)]


def test_a_login_form_with_too_many_files_is_a_400_and_one_warning(client, caplog):
    parts = b"".join(
        b'--edge\r\nContent-Disposition: form-data; name="f"; filename="%d.txt"\r\n\r\nx\r\n' % number
        for number in range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)
    )
    response = client.post("/admin/login/", parts + b"--edge--\r\n",
                           content_type="multipart/form-data; boundary=edge")
    assert (response.status_code, response.content) == (400, BAD_REQUEST)
    assert logged(caplog) == [("django.security.TooManyFilesSent", logging.WARNING,
                               "The number of files exceeded settings.DATA_UPLOAD_MAX_NUMBER_FILES.", False)]


def test_a_body_that_cannot_be_parsed_is_a_400_and_a_warning_without_its_traceback(client, caplog):
    response = client.post("/admin/login/", b"x", content_type="multipart/form-data; boundary=")
    assert (response.status_code, response.content) == (400, BAD_REQUEST)
    message = "Bad request (Unable to parse request body): /admin/login/"
    assert logged(caplog) == [("django.request", logging.WARNING, message, False)]


def every_kind_of(exception):
    # Importing these registers their SuspiciousOperations (the admin's lookups, the sessions').
    import django.contrib.admin.exceptions  # noqa: F401
    import django.contrib.sessions.exceptions  # noqa: F401

    kinds = exception.__subclasses__()
    return [exception, *(kind for subclass in kinds for kind in every_kind_of(subclass))]


@pytest.mark.parametrize("kind", every_kind_of(SuspiciousOperation), ids=lambda kind: kind.__name__)
def test_every_suspicious_operation_django_refuses_is_one_warning(caplog, kind):
    response = response_for_exception(RequestFactory().get("/"), kind("made up by a client"))
    assert (response.status_code, response.content) == (400, BAD_REQUEST)
    logger = f"django.security.{kind.__name__}"
    assert logged(caplog) == [(logger, logging.WARNING, "made up by a client", False)]


def test_an_unknown_xrpc_method_is_a_501_and_one_warning(client, caplog):
    response = client.get("/xrpc/app.bsky.feed.getNothing")
    assert (response.status_code, response.json()) == (
        501, {"error": "MethodNotImplemented", "message": "no such method: app.bsky.feed.getNothing"})
    assert logged(caplog) == [
        ("django.request", logging.WARNING, "Not Implemented: /xrpc/app.bsky.feed.getNothing", False)
    ]


def test_a_page_that_fails_is_still_an_error_with_its_traceback(monkeypatch, caplog):
    monkeypatch.setattr("skyline.views.render", lambda *args, **kwargs: 1 / 0)  # a bug of ours
    response = Client(raise_request_exception=False).get("/")
    assert response.status_code == 500
    records = [(record.name, record.levelno, record.getMessage(), record.exc_info[0])
               for record in caplog.records]
    assert records == [("django.request", logging.ERROR, "Internal Server Error: /", ZeroDivisionError)]
    assert "Traceback (most recent call last)" in caplog.text


LOG_AFTER_SET_UP = """
import logging, sys
import django
django.setup()
from django.contrib.auth.models import User
User.objects.exists()  # a query: django.db.backends logs its text at DEBUG
logging.getLogger("django.request").error("one line")
logging.getLogger("skyline.example").debug("debug is on")
print("django.views.debug" in sys.modules)
"""


@pytest.mark.parametrize("debug", ["false", "true"])
def test_skylines_logging_alone_is_applied_without_djangos_defaults(tmp_path, debug):
    # Django's defaults would add a console handler of their own when DEBUG is on (each django line
    # twice) and a mail handler that loads the debug views into every process; queries stay unlogged.
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "SKYLINE_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "skyline.settings",
           "LOG_FORMAT": "text", "DEBUG": debug}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=settings.BASE_DIR, env=env, check=True,
                   timeout=300)
    done = subprocess.run([sys.executable, "-c", LOG_AFTER_SET_UP], cwd=settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "False\n"), done.stderr
    lines = [line.split(" ", 2)[2] for line in done.stderr.splitlines()]  # without the time
    expected = ["ERROR django.request: one line"]
    if debug == "true":
        expected.append("DEBUG skyline.example: debug is on")
    assert lines == expected
