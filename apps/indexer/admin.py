"""The indexer's ClickHouse tables in the admin: to look at, never to edit.

A form on a ClickHouse table would issue ALTER mutations, so these admins allow no adding,
changing or deleting, and they read FINAL (the latest version of each row).
"""

from django.contrib import admin

from apps.indexer.models import AccountStatus


class ReadOnlyClickhouseAdmin(admin.ModelAdmin):
    def get_queryset(self, request):
        return super().get_queryset(request).settings(final=1)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AccountStatus)
class AccountStatusAdmin(ReadOnlyClickhouseAdmin):
    """Accounts whose last account event said they are deleted, taken down, deactivated or back."""

    list_display = ["did", "active", "status", "changed_at"]
    list_filter = ["status", "active"]
    search_fields = ["=did"]
    ordering = ["-changed_at"]
    show_full_result_count = False
