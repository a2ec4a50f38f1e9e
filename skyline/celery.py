"""The Celery app: Redis as broker when REDIS_URL is set; tasks run in process otherwise."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")

app = Celery("skyline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
