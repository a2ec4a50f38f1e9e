"""The Celery app: Redis as broker when REDIS_URL is set; tasks run in process otherwise.

Production runs `celery -A skyline worker` and `celery -A skyline beat` (schedules from the
database, edited in the admin). On the embedded default, skyline/scheduler.py runs the same
scheduled tasks inside the one Skyline process.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")

app = Celery("skyline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
