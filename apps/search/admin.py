"""Clean-up jobs in the admin: read-only (users create them through the API), with a cancel action."""

from django.contrib import admin, messages

from apps.indexer.admin_names import AccountNamesMixin

from .models import CleanupJob


@admin.register(CleanupJob)
class CleanupJobAdmin(AccountNamesMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "repo",
        "account_handle",
        "account_name",
        "job_state",
        "num_deleted",
        "num_deleted_today",
        "est_num_remaining",
        "created_at",
        "last_deleted_at",
        "next_run_at",
    ]
    list_filter = ["state"]
    search_fields = ["=id", "=repo"]
    ordering = ["-created_at"]
    # Everything but the encrypted token, which is never shown.
    fields = [
        "id",
        "repo",
        "account_handle",
        "account_name",
        "job_state",
        "error",
        "cleanup_types",
        "delete_older_than",
        "num_deleted",
        "num_deleted_today",
        "est_num_remaining",
        "created_at",
        "updated_at",
        "last_deleted_at",
        "next_run_at",
    ]
    readonly_fields = fields
    actions = ["cancel_jobs"]

    def account_did(self, job):
        return job.repo

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_cancel_permission(self, request):
        return request.user.has_perm("search.change_cleanupjob")

    @admin.action(description="Cancel the selected jobs", permissions=["cancel"])
    def cancel_jobs(self, request, queryset):
        cancelled = sum(job.cancel() for job in queryset)
        self.message_user(request, f"{cancelled} job(s) cancelled.", messages.SUCCESS)
