"""A fresh install serves whats-hot, top-1h and top-24h."""

from django.db import migrations

from apps.feeds.defaults import create_default_feeds


def forwards(apps, schema_editor):
    create_default_feeds(apps.get_model("feeds", "Feed"))


class Migration(migrations.Migration):
    dependencies = [("feeds", "0001_initial")]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
