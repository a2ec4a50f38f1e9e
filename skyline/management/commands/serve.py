"""`manage.py serve`: all of Skyline in one process, for the embedded default.

chDB lets one process open a data directory, so the web app (gunicorn, one worker with threads),
the firehose consumer, the PLC exporter and the scheduled tasks all run in the same worker process:
gunicorn's post_worker_init hook starts the background roles there, and its worker_exit hook stops them
(the consumer writes what it holds and saves its cursor) before the process ends. The gunicorn
master process never opens a store. SIGTERM or Ctrl-C stops everything and exits 0.
"""

import argparse
import errno
import logging
import socket
import sys
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from gunicorn.app.base import BaseApplication

from apps.indexer.consumer import Consumer
from apps.indexer.plc import PlcExporter
from skyline.env import split_address
from skyline.scheduler import InProcessScheduler
from skyline.schema import require_migrated
from skyline.wsgi import application

logger = logging.getLogger(__name__)

RESTART_DELAY = 5.0
DEFAULT_BIND = "127.0.0.1:8000"


class Supervised:
    """A role with run()/stop() (made anew by `factory`) in a thread of its own.

    The roles recover from network trouble by themselves; this restarts one whenever its run()
    ends before stop() was called, on an error (logged) or not, RESTART_DELAY seconds later.
    """

    def __init__(self, name, factory):
        self.name = name
        self.factory = factory
        self.role = None
        self._stopping = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name=f"skyline-{self.name}", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stopping.is_set():
            self.role = self.factory()
            if self._stopping.is_set():  # stop() came between the check and the new role
                break
            try:
                self.role.run()
            except Exception:
                logger.exception("the %s stopped on an error; restarting in %ss", self.name, RESTART_DELAY)
            self._stopping.wait(RESTART_DELAY)

    def stop(self):
        self._stopping.set()
        if self.role is not None:
            self.role.stop()

    def join(self, timeout):
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("the %s did not finish within %ss", self.name, timeout)


class BackgroundRoles:
    """The roles that run beside the web app in the serving process, each in a thread."""

    def __init__(self, consumer=True, scheduler=True, plc_export=True):
        self.supervised = []
        if consumer:
            self.supervised.append(Supervised("firehose consumer", Consumer))
        if plc_export:
            self.supervised.append(Supervised("PLC exporter", PlcExporter))
        self.scheduler = InProcessScheduler() if scheduler else None

    def start(self):
        if self.scheduler is not None:
            self.scheduler.start()
        for role in self.supervised:
            role.start()

    def stop(self, timeout=25.0):
        # Stop them all first, then wait: the consumer's last write overlaps the others' shutdown.
        for role in self.supervised:
            role.stop()
        for role in self.supervised:
            role.join(timeout)
        if self.scheduler is not None:
            self.scheduler.stop(timeout)


class _Gunicorn(BaseApplication):
    def __init__(self, options, roles):
        self.options = options
        self.roles = roles
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)
        roles = self.roles
        self.cfg.set("post_worker_init", lambda worker: roles.start())
        self.cfg.set("worker_exit", lambda server, worker: roles.stop())

    def load(self):
        return application


def _address(value):
    try:
        split_address(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT, e.g. 127.0.0.1:8001, not {value!r}") from None
    return value


def _check_can_listen(bind):
    """Fail in one line when nothing can listen on `bind` (gunicorn retries, printing ten)."""
    host, port = split_address(bind)
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
            probe.bind(address)
    except socket.gaierror as exc:
        raise CommandError(f"cannot listen on {bind}: {exc.strerror}") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(
                f"{bind} is already in use by another program; stop it or choose another address "
                f"(make run BIND=HOST:PORT)") from None
        raise CommandError(f"cannot listen on {bind}: {exc.strerror}") from None


class Command(BaseCommand):
    help = (
        "Run all of Skyline in one process: the web app (gunicorn), the firehose consumer and the "
        "scheduled tasks. The embedded ClickHouse allows one process per data directory."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--bind", type=_address, default=settings.SERVE_BIND or DEFAULT_BIND,
                            help=f"HOST:PORT to listen on (default: SKYLINE_BIND, else {DEFAULT_BIND})")
        parser.add_argument("--threads", type=int, default=8, help="request threads (default %(default)s)")
        parser.add_argument("--no-consumer", action="store_true", help="do not follow the firehose")
        parser.add_argument("--no-scheduler", action="store_true", help="do not run the scheduled tasks")
        parser.add_argument("--no-plc-export", action="store_true",
                            help="do not copy the PLC directory's log (also off when PLC_EXPORT is false)")

    def handle(self, *args, bind, threads, no_consumer, no_scheduler, no_plc_export, **options):
        if "chdb" in sys.modules:
            # A forked worker cannot use an engine its parent loaded (queries hang there).
            raise CommandError("chDB was loaded before the web worker started; nothing may open the store here")
        _check_can_listen(bind)
        # Only the relational store can be checked here: opening chDB in this (master) process would
        # leave the forked worker unable to use it. `make run` migrates both before serving.
        require_migrated("default")
        roles = BackgroundRoles(
            consumer=not no_consumer, scheduler=not no_scheduler,
            plc_export=settings.PLC_EXPORT and not no_plc_export,
        )
        options = {
            "bind": bind,
            "workers": 1,
            "worker_class": "gthread",
            "threads": threads,
            "accesslog": "-",
            "logger_class": "skyline.access_log.AccessLog",
            "graceful_timeout": 30,
            "control_socket_disable": True,
            # X-Forwarded-Proto is Django's to honour, from TRUSTED_PROXY_COUNT proxies only.
            "secure_scheme_headers": {},
        }
        _Gunicorn(options, roles).run()
