"""Where the firehose consumer resumes: the Jetstream time_us up to which every received event is written.

Kept in Redis when REDIS_URL is set (so any consumer process can take over), otherwise in the
relational store. Jetstream cursors are times, not offsets, so one value works against any host.
"""

from django.conf import settings

from apps.indexer.models import FirehoseCursor


class RedisCursor:
    def __init__(self, url, name):
        import redis  # here, not with the module: loading redis costs a noticeable part of the start-up

        self._client = redis.Redis.from_url(url)
        self._key = f"skyline:indexer:cursor:{name}"

    def load(self):
        value = self._client.get(self._key)
        return int(value) if value is not None else None

    def save(self, time_us):
        self._client.set(self._key, time_us)


class DatabaseCursor:
    def __init__(self, name):
        self._name = name

    def load(self):
        return FirehoseCursor.objects.filter(name=self._name).values_list("time_us", flat=True).first()

    def save(self, time_us):
        FirehoseCursor.objects.update_or_create(name=self._name, defaults={"time_us": time_us})


def cursor_store(name="jetstream"):
    """The cursor of the consumer called `name`, in Redis when there is one."""
    if settings.REDIS_URL:
        return RedisCursor(settings.REDIS_URL, name)
    return DatabaseCursor(name)
