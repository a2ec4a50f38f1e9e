#!/usr/bin/env python
"""Skyline's command-line utility."""

import gc
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")
    # clickhouse_driver fills a 400-year date table when imported (a tenth of a second) unless told
    # to fill it as dates come up; an unparsable range means "nothing ahead of time".
    os.environ.setdefault("CLICKHOUSE_DRIVER_LASY_DATE_LUT", "lazy")
    # Set-up makes tens of thousands of objects that live as long as the process (modules,
    # classes, functions); the cycle collector ran over them again and again while they were made,
    # and went on doing so in every full collection after. It is off during the set-up, and what
    # the set-up made is then moved out of its sight for good (gc.freeze(): the few cycles of
    # garbage set-up leaves are kept too, a fixed amount).
    gc.disable()
    import django

    _setup = django.setup

    def setup(*args, **kwargs):
        try:
            _setup(*args, **kwargs)
        finally:
            gc.freeze()
            gc.enable()

    django.setup = setup
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from skyline.db.chdb.driver import DataDirectoryLocked

    try:
        execute_from_command_line(sys.argv)
    except (ImproperlyConfigured, DataDirectoryLocked) as exc:
        # A configuration mistake or a held data directory: one line, not a traceback.
        sys.stderr.write(f"skyline: {exc}\n")
        sys.exit(1)
    except Exception as exc:
        if isinstance(exc.__cause__, DataDirectoryLocked):
            sys.stderr.write(f"skyline: {exc.__cause__}\n")
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
