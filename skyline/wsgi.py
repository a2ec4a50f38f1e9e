import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "skyline.settings")
application = get_wsgi_application()

if not settings.OTEL_EXPORTER_OTLP_ENDPOINT:
    # getFeedSkeleton answered in front of Django's handler (skyline/hot_paths.py). With tracing on,
    # every request goes through Django, where the instrumentation's middleware makes its span.
    from skyline.hot_paths import HotPathApplication

    application = HotPathApplication(application)
