"""An idle server's logs stay quiet: a task's success is logged at DEBUG, not INFO; a failure still shows."""

import logging

from skyline.celery import app


@app.task(name="tests.returns_nothing")
def returns_nothing():
    return []


@app.task(name="tests.breaks")
def breaks():
    raise ValueError("the task broke")


def test_a_tasks_success_is_not_logged_at_the_default_level(caplog):
    caplog.set_level(logging.INFO)
    returns_nothing.apply()
    assert [record for record in caplog.records if "succeeded" in record.getMessage()] == []


def test_a_tasks_success_shows_at_debug(caplog):
    caplog.set_level(logging.DEBUG)
    result = returns_nothing.apply()
    (record,) = [record for record in caplog.records if "succeeded" in record.getMessage()]
    assert record.levelname == "DEBUG"
    assert record.getMessage().startswith(f"Task tests.returns_nothing[{result.id}] succeeded in ")


def test_a_tasks_failure_is_still_logged(caplog):
    caplog.set_level(logging.INFO)
    breaks.apply()
    (record,) = [record for record in caplog.records if record.name == "celery.app.trace"]
    assert record.levelname == "ERROR"
    assert "raised unexpected: ValueError('the task broke')" in record.getMessage()
