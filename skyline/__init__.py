"""The Skyline project.

The Celery app (skyline/celery.py) loads on first use rather than with every process, as commands
such as consume_firehose never use it: `celery -A skyline` finds it in skyline.celery, the task
modules import it (their tasks are bound to it), and `skyline.celery_app` loads it.
"""

__all__ = ["celery_app"]


def __getattr__(name):
    if name == "celery_app":
        from skyline.celery import app

        return app
    raise AttributeError(f"module 'skyline' has no attribute {name!r}")
