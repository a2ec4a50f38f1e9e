"""gunicorn settings for the production web role (a ClickHouse server, not chDB, behind it).

Override any of these on the command line or with GUNICORN_CMD_ARGS, e.g. "--workers 8".
"""

import multiprocessing

wsgi_app = "skyline.wsgi:application"
bind = "0.0.0.0:8000"
workers = multiprocessing.cpu_count() * 2 + 1
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# X-Forwarded-Proto is Django's to honour, from TRUSTED_PROXY_COUNT proxies only (gunicorn's default
# trusts it from any local peer).
secure_scheme_headers = {}
logger_class = "skyline.access_log.AccessLog"
max_requests = 10000
max_requests_jitter = 1000


def child_exit(server, worker):
    # With PROMETHEUS_MULTIPROC_DIR set, drop the metrics files of workers that have gone.
    from django.conf import settings
    from prometheus_client import multiprocess

    if settings.PROMETHEUS_MULTIPROC_DIR:
        multiprocess.mark_process_dead(worker.pid, settings.PROMETHEUS_MULTIPROC_DIR)
