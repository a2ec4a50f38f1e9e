"""The in-process scheduler of the embedded default: the beat schedule run inside the Skyline process.

It reads the same django-celery-beat rows as `celery beat` (so the admin edits both), decides
what is due with django-celery-beat's own entries, and runs each due task in a thread of its own
pool, never two runs of one entry at once. A run is recorded on its row (last run, run count) as
beat does. As beat's DatabaseScheduler, it reads the rows again only when django-celery-beat's
change marker moved (PeriodicTasks: every save or deletion of a task or a schedule moves it, the
recording of a run does not), or every SCHEDULE_SYNC_MAX_INTERVAL for writes that bypass the
models' signals; a tick is otherwise one query (reading every row each 5-second tick was ~3% of
the GIL under serving load). Start it where the process starts (`manage.py serve`) when there is
no broker:

    scheduler = InProcessScheduler()
    scheduler.start()
    ...
    scheduler.stop()
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections

logger = logging.getLogger(__name__)


class InProcessScheduler:
    def __init__(self, tick_seconds=5.0, workers=4):
        self.tick_seconds = tick_seconds
        self._workers = workers
        self._stop = threading.Event()
        self._running = {}
        self._unknown = set()
        self._entries = {}  # primary key -> django-celery-beat's entry of an enabled task, as last read
        self._read = None  # (the change marker, time.monotonic()) of that read
        self._thread = None
        self._pool = None

    def start(self):
        if self._thread is not None:
            return
        from skyline.celery import app

        app.loader.import_default_modules()  # registers every app's tasks.py, as a worker does
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="skyline-task")
        self._thread = threading.Thread(target=self._loop, name="skyline-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout=30.0):
        """Stop scheduling and wait (up to `timeout` seconds) for the tasks that are running."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._thread = None

    def _loop(self):
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("the scheduler could not read the schedule")
            finally:
                close_old_connections()
            self._stop.wait(self.tick_seconds)

    def tick(self):
        """Start every enabled task that is due and not still running; the names started."""
        from skyline.celery import app

        started = []
        try:
            for pk, entry in list(self._schedule(app).items()):
                future = self._running.get(pk)
                if future is not None and not future.done():
                    continue
                if not entry.is_due().is_due:
                    continue
                if entry.task not in app.tasks:
                    if entry.task not in self._unknown:
                        self._unknown.add(entry.task)
                        logger.warning("scheduled task %r (%s) is not a known task", entry.name, entry.task)
                    continue
                entry = next(entry)
                entry.save()
                self._entries[pk] = entry
                self._running[pk] = self._pool.submit(self._run, app.tasks[entry.task], entry)
                started.append(entry.name)
        except Exception:
            self._read = None  # an entry advanced but not saved is ahead of its row: read the rows again
            raise
        return started

    def _schedule(self, app):
        """The enabled tasks' entries by primary key, read again when the schedule changed."""
        from django_celery_beat.models import PeriodicTask, PeriodicTasks
        from django_celery_beat.schedulers import SCHEDULE_SYNC_MAX_INTERVAL, ModelEntry

        change, now = PeriodicTasks.last_change(), time.monotonic()
        if self._read is None or self._read[0] != change or now - self._read[1] >= SCHEDULE_SYNC_MAX_INTERVAL:
            enabled = PeriodicTask.objects.filter(enabled=True)
            self._entries = {task.pk: ModelEntry(task, app) for task in enabled}
            self._read = (change, now)
        return self._entries

    @staticmethod
    def _run(task, entry):
        try:
            result = task.apply(args=entry.args, kwargs=entry.kwargs)
            if result.failed():
                logger.error("scheduled task %s failed: %r", entry.name, result.result)
        finally:
            close_old_connections()
