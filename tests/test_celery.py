"""The scheduled tasks through a real Celery worker and Redis broker, and in process on the embedded default."""

import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from apps.search import stats
from skyline.schedule import DEFAULT_SCHEDULE, install_default_schedule
from skyline.scheduler import InProcessScheduler
from tests.support.servers import redis_server
from tests.support.stores import BOTH_STORES

ROOT = Path(__file__).resolve().parent.parent

# Run in the worker's own data directory before the worker starts (chDB: one process per directory).
PREPARE_WORKER_STORE = """
import datetime, django
django.setup()
from django.core.management import call_command
from django.db import connections
call_command("migrate", verbosity=0)
call_command("migrate", database="clickhouse", verbosity=0)
day = datetime.datetime(2025, 5, 4, 12, tzinfo=datetime.timezone.utc)
connections["clickhouse"].insert_rows(
    "posts", ["did", "rkey", "uri", "created_at", "text", "langs", "deleted", "time_us"],
    [("did:plc:" + "a" * 24, rkey, "at://x/app.bsky.feed.post/" + rkey, day, "hi", [], 0, 1) for rkey in ("r1", "r2")],
)
"""


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path / "redis") as url:
        yield url


@pytest.fixture
def worker(redis_url, tmp_path):
    """A `celery -A skyline worker --pool=solo` on its own data directory, with Redis as broker."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "skyline.settings",
        "SKYLINE_DATA_DIR": str(tmp_path / "worker"),
        "REDIS_URL": redis_url,
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run([sys.executable, "-c", PREPARE_WORKER_STORE], cwd=ROOT, env=env, check=True, timeout=600)
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "skyline",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = Celery(broker=redis_url, backend=redis_url)
    try:
        yield client
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_tasks_run_in_a_celery_worker_through_the_redis_broker(worker, redis_url):
    result = worker.send_task("apps.search.tasks.refresh_stats")
    assert result.get(timeout=300) == {
        "total_users": 0,
        "total_posts": 2,
        "total_follows": 0,
        "total_likes": 0,
    }
    # The worker's refresh is what every web process serves: it is in the shared (Redis) cache.
    shared = RedisCache(redis_url, {}).get(stats.CACHE_KEY)
    assert shared["daily_data"][0]["date"] == "2025-05-04"
    assert shared["daily_data"][0]["num_posts"] == 2

    assert worker.send_task("apps.search.tasks.run_cleanup_jobs").get(timeout=300) == []


@pytest.mark.django_db(databases=BOTH_STORES)
def test_the_default_schedule_is_installed_once_and_keeps_operators_edits():
    install_default_schedule(PeriodicTask, IntervalSchedule, CrontabSchedule)
    tasks = {task.name: task for task in PeriodicTask.objects.all()}
    assert {name: task.task for name, task in tasks.items()} == {
        name: task for name, task, _ in DEFAULT_SCHEDULE
    }
    assert tasks["Refresh site statistics"].interval.every == 60
    assert str(tasks["Prune old request analytics"].crontab.hour) == "3"

    PeriodicTask.objects.filter(name="Refresh site statistics").update(enabled=False)
    PeriodicTask.objects.filter(name="Run repo clean-up jobs").delete()
    install_default_schedule(PeriodicTask, IntervalSchedule, CrontabSchedule)
    assert PeriodicTask.objects.get(name="Refresh site statistics").enabled is False
    assert PeriodicTask.objects.count() == len(DEFAULT_SCHEDULE)


@pytest.mark.django_db(databases=BOTH_STORES)
def test_the_in_process_scheduler_runs_what_is_due_from_the_same_rows():
    cache.clear()
    install_default_schedule(PeriodicTask, IntervalSchedule, CrontabSchedule)
    now = timezone.now()
    PeriodicTask.objects.update(last_run_at=now)
    PeriodicTask.objects.filter(name="Refresh site statistics").update(
        last_run_at=now - datetime.timedelta(minutes=2)
    )
    PeriodicTask.objects.create(
        name="Gone",
        task="apps.nowhere.tasks.vanished",
        interval=IntervalSchedule.objects.get(every=60),
        last_run_at=now - datetime.timedelta(hours=1),
    )

    scheduler = InProcessScheduler(tick_seconds=0.05)
    scheduler.start()
    try:
        _wait_for(lambda: cache.get(stats.CACHE_KEY) is not None, 20, "the stats refresh")
    finally:
        scheduler.stop()

    runs = dict(PeriodicTask.objects.values_list("name", "total_run_count"))
    assert runs == {name: int(name == "Refresh site statistics") for name, _, _ in DEFAULT_SCHEDULE} | {
        "Gone": 0
    }
    refreshed = PeriodicTask.objects.get(name="Refresh site statistics").last_run_at
    assert refreshed > now - datetime.timedelta(seconds=1)
    cache.clear()


@pytest.mark.django_db(databases=BOTH_STORES)
def test_a_tick_reads_the_schedule_again_only_after_it_changed():
    install_default_schedule(PeriodicTask, IntervalSchedule, CrontabSchedule)
    PeriodicTask.objects.update(last_run_at=timezone.now())  # nothing due: no task is started
    scheduler = InProcessScheduler()
    assert scheduler.tick() == []

    def queries_of_a_tick():
        with CaptureQueriesContext(connection) as queries:
            assert scheduler.tick() == []
        return [query["sql"] for query in queries]

    unchanged = queries_of_a_tick()
    assert len(unchanged) == 1 and "django_celery_beat_periodictasks" in unchanged[0]  # the change marker
    task = PeriodicTask.objects.get(name="Run repo clean-up jobs")
    task.description = "edited in the admin"
    task.save()
    assert any('FROM "django_celery_beat_periodictask"' in sql for sql in queries_of_a_tick())
    assert len(queries_of_a_tick()) == 1


@pytest.mark.django_db(databases=BOTH_STORES)
def test_the_in_process_scheduler_follows_an_edit_and_counts_each_run_once():
    install_default_schedule(PeriodicTask, IntervalSchedule, CrontabSchedule)
    now = timezone.now()
    PeriodicTask.objects.update(last_run_at=now)
    long_ago = now - datetime.timedelta(hours=1)
    PeriodicTask.objects.filter(name="Refresh site statistics").update(last_run_at=long_ago)
    PeriodicTask.objects.filter(name="Run repo clean-up jobs").update(enabled=False, last_run_at=long_ago)

    def runs(name):
        return PeriodicTask.objects.get(name=name).total_run_count

    scheduler = InProcessScheduler(tick_seconds=0.05)
    scheduler.start()
    try:
        _wait_for(lambda: runs("Refresh site statistics") == 1, 20, "the stats refresh")
        task = PeriodicTask.objects.get(name="Run repo clean-up jobs")  # as the admin enables it
        task.enabled = True
        task.last_run_at = long_ago
        task.save()
        edited = PeriodicTasks.last_change()
        _wait_for(lambda: runs("Run repo clean-up jobs") == 1, 20, "the clean-up run after the edit")
    finally:
        scheduler.stop()

    assert PeriodicTasks.last_change() == edited  # recording a run is no change of the schedule

    ran = ("Refresh site statistics", "Run repo clean-up jobs")
    assert dict(PeriodicTask.objects.values_list("name", "total_run_count")) == {
        name: int(name in ran) for name, _, _ in DEFAULT_SCHEDULE
    }
