"""`manage.py serve`: run Skyline's web app with gunicorn in one process tree."""

from django.core.management.base import BaseCommand
from gunicorn.app.base import BaseApplication

from skyline.wsgi import application


class _Gunicorn(BaseApplication):
    def __init__(self, options):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return application


class Command(BaseCommand):
    help = "Serve Skyline over HTTP (one worker: the embedded ClickHouse allows one process)."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT to listen on")
        parser.add_argument("--threads", type=int, default=8, help="request threads in the worker")

    def handle(self, *args, bind, threads, **options):
        _Gunicorn({"bind": bind, "workers": 1, "threads": threads, "accesslog": "-"}).run()
