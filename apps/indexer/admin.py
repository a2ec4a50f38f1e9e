"""The indexer's ClickHouse tables in the admin: to look at, never to edit.

A form on a ClickHouse table would issue ALTER mutations, so these admins allow no adding,
changing or deleting, and they read FINAL (the latest version of each row).
"""

from django.contrib import admin

from apps.indexer.admin_names import AccountNamesMixin
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


class ActiveFilter(admin.SimpleListFilter):
    """Yes/No for the UInt8 `active` column (the default filter would offer 0 and 1)."""

    title = "active"
    parameter_name = "active"

    def lookups(self, request, model_admin):
        return [("1", "Yes"), ("0", "No")]

    def queryset(self, request, queryset):
        return queryset.filter(active=int(self.value())) if self.value() in ("0", "1") else queryset


# Django would say "account statuss"; the model's Meta is left alone so the name needs no migration.
AccountStatus._meta.verbose_name_plural = "account statuses"


@admin.register(AccountStatus)
class AccountStatusAdmin(AccountNamesMixin, ReadOnlyClickhouseAdmin):
    """Accounts whose last account event said they are deleted, taken down, deactivated or back."""

    list_display = ["did", "account_handle", "account_name", "is_active", "status", "changed_at"]
    list_filter = ["status", ActiveFilter]
    fields = ["did", "account_handle", "account_name", "is_active", "status", "changed_at", "seq", "time_us"]
    readonly_fields = ["account_handle", "account_name", "is_active"]
    search_fields = ["=did"]
    ordering = ["-changed_at"]
    show_full_result_count = False

    @admin.display(description="active", boolean=True, ordering="active")
    def is_active(self, account):
        return bool(account.active)
