"""Tasks retry with backoff while a store is down, and succeed once it is back."""

from django.db import OperationalError

from skyline.celery import app


def test_a_task_whose_store_is_down_retries_until_it_answers():
    attempts = []

    @app.task(name="tests.flaky_store_task")
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationalError("ClickHouse is down")
        return "done"

    result = flaky.apply()
    assert result.get() == "done"
    assert len(attempts) == 3


def test_other_errors_are_not_retried():
    attempts = []

    @app.task(name="tests.broken_task")
    def broken():
        attempts.append(1)
        raise ValueError("a bug, not an outage")

    result = broken.apply()
    assert result.failed() and isinstance(result.result, ValueError)
    assert len(attempts) == 1


def test_every_skyline_task_backs_off_exponentially_with_jitter():
    app.loader.import_default_modules()
    ours = [task for name, task in app.tasks.items() if name.startswith("apps.")]
    assert {"apps.search.tasks.refresh_stats", "apps.feeds.tasks.refresh_trending_feeds"} <= {t.name for t in ours}
    for task in ours:
        assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter, task.max_retries) == (2, 300, True, 8)
        assert OperationalError in task.autoretry_for
