#!/usr/bin/env python
"""Skyline's command-line utility."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")
    # clickhouse_driver fills a 400-year date table when imported (a tenth of a second) unless told
    # to fill it as dates come up; an unparsable range means "nothing ahead of time".
    os.environ.setdefault("CLICKHOUSE_DRIVER_LASY_DATE_LUT", "lazy")
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
