"""The default periodic tasks: rows of django-celery-beat, so operators change them in the admin.

`celery beat` (DatabaseScheduler) and the embedded in-process scheduler both read these rows.
"""

# (name, task, every N seconds or a crontab dict)
DEFAULT_SCHEDULE = [
    ("Refresh trending feeds", "apps.feeds.tasks.refresh_trending_feeds", 60),
    ("Refresh site statistics", "apps.search.tasks.refresh_stats", 60),
    ("Run repo clean-up jobs", "apps.search.tasks.run_cleanup_jobs", 60),
    ("Refresh member profiles from the AppView", "apps.accounts.tasks.refresh_member_profiles", 600),
    (
        "Prune old request analytics",
        "apps.feeds.tasks.prune_request_analytics",
        {"minute": "17", "hour": "3"},
    ),
]


def install_default_schedule(PeriodicTask, IntervalSchedule, CrontabSchedule, names=None):
    """Create each default task (or each of `names`) that does not exist yet; operators' edits are kept."""
    for name, task, when in DEFAULT_SCHEDULE:
        if (names is not None and name not in names) or PeriodicTask.objects.filter(name=name).exists():
            continue
        if isinstance(when, int):
            interval, _ = IntervalSchedule.objects.get_or_create(every=when, period="seconds")
            PeriodicTask.objects.create(name=name, task=task, interval=interval)
        else:
            crontab, _ = CrontabSchedule.objects.get_or_create(
                day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC", **when
            )
            PeriodicTask.objects.create(name=name, task=task, crontab=crontab)
