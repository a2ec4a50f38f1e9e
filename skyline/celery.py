"""The Celery app: Redis as broker when REDIS_URL is set; tasks run in process otherwise.

Production runs `celery -A skyline worker` and `celery -A skyline beat` (schedules from the
database, edited in the admin). On the embedded default, skyline/scheduler.py runs the same
scheduled tasks inside the one Skyline process.
"""

import logging
import os

from celery import Celery, Task
from celery.app.trace import LOG_SUCCESS
from celery.signals import beat_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")


class SkylineTask(Task):
    """Every task retries, with exponential backoff and jitter, while a store is unavailable."""

    retry_backoff = 2
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 8

    @property
    def autoretry_for(self):
        from skyline.health import STORE_ERRORS

        return STORE_ERRORS


class _SuccessesAtDebug(logging.Filter):
    """Celery logs every task's success at INFO ("Task ... succeeded in 0.01s: []"): the schedules
    make that a line every few seconds on an idle server. Successes show at DEBUG only; failures and
    retries keep their levels."""

    def filter(self, record):
        if record.msg != LOG_SUCCESS:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).getEffectiveLevel() <= logging.DEBUG


logging.getLogger("celery.app.trace").addFilter(_SuccessesAtDebug())

app = Celery("skyline", task_cls=SkylineTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
@beat_init.connect
def _serve_metrics(**kwargs):
    """Workers and beat expose Prometheus metrics on METRICS_PORT, when it is set."""
    from django.conf import settings

    from skyline.metrics import serve_metrics

    if settings.METRICS_PORT:
        serve_metrics(settings.METRICS_PORT)
