"""Admin lists and pages that show accounts by DID, with their handles and display names."""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList

from apps.indexer.profiles import profiles_of


class AccountNamesChangeList(ChangeList):
    """A list whose rows show an account by DID, with each page's handles and display names in one lookup."""

    def get_results(self, request):
        super().get_results(request)
        dids = [self.model_admin.account_did(row) for row in self.result_list]
        known = profiles_of([did for did in dids if did])
        for row, did in zip(self.result_list, dids):
            row.account_profile = known[did] if did else ("", "")


class AccountNamesMixin:
    """For admins that show an account by DID (`account_did`): its handle and display name, the
    index's, else the AppView's as cached, in the list (`account_handle`, `account_name`) and on
    the object's page."""

    def account_did(self, obj):
        return obj.did

    def get_changelist(self, request, **kwargs):
        return AccountNamesChangeList

    def _account_profile(self, obj):
        found = getattr(obj, "account_profile", None)
        if found is None:
            did = self.account_did(obj)
            found = profiles_of([did])[did] if did else ("", "")
        return found

    @admin.display(description="handle")
    def account_handle(self, obj):
        return self._account_profile(obj)[0]

    @admin.display(description="display name")
    def account_name(self, obj):
        return self._account_profile(obj)[1]
