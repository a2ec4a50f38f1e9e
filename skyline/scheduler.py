"""The in-process scheduler of the embedded default: the beat schedule run inside the Skyline process.

It reads the same django-celery-beat rows as `celery beat` (so the admin edits both), decides
what is due with django-celery-beat's own entries, and runs each due task in a thread of its own
pool, never two runs of one entry at once. A run is recorded on its row (last run, run count) as
beat does. Start it where the process starts (`manage.py serve`) when there is no broker:

    scheduler = InProcessScheduler()
    scheduler.start()
    ...
    scheduler.stop()
"""

import logging
import threading
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
        from django_celery_beat.models import PeriodicTask
        from django_celery_beat.schedulers import ModelEntry

        from skyline.celery import app

        started = []
        for task in PeriodicTask.objects.filter(enabled=True):
            future = self._running.get(task.pk)
            if future is not None and not future.done():
                continue
            entry = ModelEntry(task, app)
            if not entry.is_due().is_due:
                continue
            if entry.task not in app.tasks:
                if entry.task not in self._unknown:
                    self._unknown.add(entry.task)
                    logger.warning("scheduled task %r (%s) is not a known task", task.name, entry.task)
                continue
            entry = next(entry)
            entry.save()
            self._running[task.pk] = self._pool.submit(self._run, app.tasks[entry.task], entry)
            started.append(task.name)
        return started

    @staticmethod
    def _run(task, entry):
        try:
            result = task.apply(args=entry.args, kwargs=entry.kwargs)
            if result.failed():
                logger.error("scheduled task %s failed: %r", entry.name, result.result)
        finally:
            close_old_connections()
