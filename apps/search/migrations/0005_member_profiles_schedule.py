"""Installs the task added since 0003 (member profiles from the AppView), and only it: a default an
operator deleted stays deleted."""

from django.db import migrations

from skyline.schedule import install_default_schedule


def install(apps, schema_editor):
    install_default_schedule(
        apps.get_model("django_celery_beat", "PeriodicTask"),
        apps.get_model("django_celery_beat", "IntervalSchedule"),
        apps.get_model("django_celery_beat", "CrontabSchedule"),
        names={"Refresh member profiles from the AppView"},
    )


class Migration(migrations.Migration):
    dependencies = [("search", "0004_imported_daily_stats")]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
