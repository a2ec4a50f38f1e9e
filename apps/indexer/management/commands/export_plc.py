"""`manage.py export_plc`: copy the PLC directory's operation log into plc_operations, and keep up."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.indexer.plc import ExportCursor, PlcExporter
from skyline.metrics import serve_metrics
from skyline.roles import stopped_by_signals
from skyline.schema import require_migrated


class Command(BaseCommand):
    help = (
        "Page through the PLC directory's /export (PLC_URL) into plc_operations and plc_did_state, "
        "resuming from the saved cursor; then poll for new operations (or exit with --once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="exit once caught up instead of polling")
        parser.add_argument("--rate", type=float, default=settings.PLC_EXPORT_RATE,
                            help="pages per second at most (default PLC_EXPORT_RATE: %(default)s)")
        parser.add_argument("--after", help="start after this seq or createdAt instead of the saved cursor")
        parser.add_argument(
            "--metrics-port", type=int, default=settings.METRICS_PORT or None,
            help="serve Prometheus /metrics on this port (default METRICS_PORT; none when unset)",
        )

    def handle(self, *args, once, rate, after, metrics_port, **options):
        if rate <= 0:
            raise CommandError("--rate must be more than 0 pages per second")
        if metrics_port:
            serve_metrics(metrics_port)
        require_migrated("default", "clickhouse")
        exporter = PlcExporter(rate=rate, after=after, until_caught_up=once)
        with stopped_by_signals(exporter):
            exporter.run()
        self.stdout.write(
            f"exported {exporter.operations_written} PLC operations in {exporter.pages_written} page(s); "
            f"cursor {ExportCursor().load()}"
        )
