"""Scheduled work of the accounts app (the beat schedule, or the in-process scheduler, runs these)."""

from celery import shared_task

import skyline.celery  # noqa: F401  (the configured app, bound before the tasks: skyline loads it lazily)

from . import profiles


@shared_task
def refresh_member_profiles():
    """Fetch the AppView's handles and display names of members the index cannot name; how many were asked."""
    return profiles.refresh_member_profiles()
