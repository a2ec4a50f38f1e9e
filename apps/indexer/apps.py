from django.apps import AppConfig


class IndexerConfig(AppConfig):
    name = "apps.indexer"
