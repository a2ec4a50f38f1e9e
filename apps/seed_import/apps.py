from django.apps import AppConfig


class SeedImportConfig(AppConfig):
    name = "apps.seed_import"
    verbose_name = "import from bsky-experiments"
