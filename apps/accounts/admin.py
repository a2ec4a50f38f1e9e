"""The admin for community labels, their members and API keys.

Members are added by DID or handle (resolved and verified both ways; a failure is shown, never
swallowed), one at a time or as a pasted list. Every change goes to the admin log (LogEntry), which
is the history of who changed what. A new API key is shown once, on the page its creation redirects to.
"""

import base64
import re

from cryptography.fernet import Fernet, InvalidToken
from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.html import format_html

from apps.accounts.models import ActorLabel, APIKey, Label, MembershipError, resolve_actor
from apps.accounts.profiles import owner_did
from apps.indexer.admin_names import AccountNamesMixin


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "member_count", "created_at"]
    search_fields = ["name", "description"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members"))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, label):
        url = reverse("admin:accounts_actorlabel_changelist") + f"?label__id__exact={label.pk}"
        return format_html('<a href="{}">{}</a>', url, label.member_count)


class MemberForm(forms.ModelForm):
    identifier = forms.CharField(label="DID or handle", help_text="e.g. alice.bsky.social or did:plc:…")

    class Meta:
        model = ActorLabel
        fields = ["label"]

    def clean(self):
        cleaned = super().clean()
        if "identifier" in cleaned:
            try:
                self.instance.did, self.instance.handle = resolve_actor(cleaned["identifier"])
            except MembershipError as exc:
                raise forms.ValidationError({"identifier": str(exc)}) from None
            label = cleaned.get("label")
            if label and label.members.filter(did=self.instance.did).exists():
                raise forms.ValidationError({"identifier": f"{self.instance.did} already holds {label}"})
        return cleaned


class BulkMembersForm(forms.Form):
    label = forms.ModelChoiceField(Label.objects.all())
    action = forms.ChoiceField(choices=[("add", "Add these accounts"), ("remove", "Remove these accounts")])
    identifiers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 60}),
        help_text="DIDs or handles, separated by new lines, spaces or commas",
    )

    def clean_identifiers(self):
        return [value for value in re.split(r"[\s,]+", self.cleaned_data["identifiers"]) if value]


@admin.register(ActorLabel)
class ActorLabelAdmin(AccountNamesMixin, admin.ModelAdmin):
    form = MemberForm
    list_display = ["did", "current_handle", "display_name", "label", "added_by", "created_at"]
    list_filter = ["label"]
    search_fields = ["did", "handle", "label__name"]
    list_select_related = ["label"]

    @admin.display(description="handle")
    def current_handle(self, member):
        return self.account_handle(member) or member.handle

    @admin.display(description="display name")
    def display_name(self, member):
        return self.account_name(member)

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["label", "identifier"]
        return ["label", "did", "current_handle", "display_name", "added_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        # A membership has nothing to edit: it is added or removed.
        return False if obj else super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        obj.added_by = request.user.get_username()
        super().save_model(request, obj, form, change)

    def get_urls(self):
        bulk = path("bulk/", self.admin_site.admin_view(self.bulk_view), name="accounts_actorlabel_bulk")
        return [bulk, *super().get_urls()]

    def bulk_view(self, request):
        """Add or remove a pasted list of accounts; each failure is reported by name."""
        if not (self.has_add_permission(request) and self.has_delete_permission(request)):
            return HttpResponseRedirect(reverse("admin:index"))
        form = BulkMembersForm(request.POST or None, initial={"label": request.GET.get("label")})
        if request.method == "POST" and form.is_valid():
            label, action = form.cleaned_data["label"], form.cleaned_data["action"]
            done, failed = 0, []
            for identifier in form.cleaned_data["identifiers"]:
                try:
                    done += self._apply(request, label, action, identifier)
                except MembershipError as exc:
                    failed.append(identifier)
                    messages.error(request, f"Could not {action} {exc}")
            verb = "added to" if action == "add" else "removed from"
            if done or not failed:
                messages.success(request, f"{done} account(s) {verb} {label}.")
            if not failed:
                changelist = reverse("admin:accounts_actorlabel_changelist")
                return HttpResponseRedirect(f"{changelist}?label__id__exact={label.pk}")
            # The ones that failed stay in the form, to be corrected or tried again.
            form = BulkMembersForm(initial={"label": label.pk, "action": action, "identifiers": "\n".join(failed)})
        context = {**self.admin_site.each_context(request), "opts": self.opts, "form": form,
                   "title": "Add or remove several members"}
        return TemplateResponse(request, "admin/accounts/actorlabel/bulk.html", context)

    def _apply(self, request, label, action, identifier):
        if action == "add":
            member, created = label.add(identifier, added_by=request.user.get_username())
            if created:
                self.log_addition(request, member, [{"added": {}}])
            return int(created)
        members = label.members_matching(identifier)
        self.log_deletions(request, members)
        return members.delete()[0]


NEW_KEY_SESSION = "accounts:new_api_key"
NEW_KEY_SECONDS = 300


def _new_key_cipher():
    key = salted_hmac("apps.accounts.admin.new_key", "", algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(key))


class NewAPIKeyForm(forms.ModelForm):
    admin_wide = forms.BooleanField(
        required=False, label="Admin-wide", help_text="may manage every label (instead of choosing one)"
    )

    class Meta:
        model = APIKey
        fields = ["name", "label"]
        help_texts = {
            "label": "the one label this key may manage; for every label, leave it empty and tick admin-wide",
        }

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("label")) == cleaned.get("admin_wide", False):
            raise forms.ValidationError("Choose one label, or tick admin-wide (not both).")
        return cleaned


@admin.register(APIKey)
class APIKeyAdmin(AccountNamesMixin, admin.ModelAdmin):
    list_display = ["name", "owner", "shown_prefix", "scope", "created_by", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["label", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "lookup", "label__name"]
    list_select_related = ["label", "created_by"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = NewAPIKeyForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["name", "label", "admin_wide"]
        return ["name", "owner", "shown_prefix", "scope", "created_by", "created_at", "last_used_at",
                "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["owner", "shown_prefix", "scope", "created_by", "created_at", "last_used_at", "revoked_at"]

    def account_did(self, key):
        # A key imported from bsky-experiments is named after its holder, often a DID.
        return owner_did(key.name)

    @admin.display(description="owner")
    def owner(self, key):
        """The account the key's name gives, by handle and display name ('' for keys named otherwise)."""
        handle, name = self._account_profile(key)
        return " ".join(filter(None, [name, f"@{handle}" if handle else ""]))

    def has_delete_permission(self, request, obj=None):
        # Keys are revoked, not deleted, so the record of who could do what stays.
        return False

    @admin.display(description="key")
    def shown_prefix(self, key):
        return f"{key.prefix}…"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by_id = request.user.pk
            obj.plain_key = obj.issue()
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        """Redirect to the page that shows the plain key once, so reloading it creates no other key.

        The key waits in the session encrypted (keyed from SECRET_KEY) for at most NEW_KEY_SECONDS,
        and that page takes it out; it is never in a message or the log.
        """
        sealed = _new_key_cipher().encrypt(f"{obj.pk}:{obj.plain_key}".encode())
        request.session[NEW_KEY_SESSION] = sealed.decode()
        return HttpResponseRedirect(reverse("admin:accounts_apikey_created", args=[obj.pk]))

    def get_urls(self):
        created = path("<int:pk>/created/", self.admin_site.admin_view(self.created_view),
                       name="accounts_apikey_created")
        return [created, *super().get_urls()]

    def created_view(self, request, pk):
        """The new key, the first time this page is shown after its creation; afterwards, that it was."""
        if not self.has_add_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        key = self.get_object(request, str(pk))
        if key is None:
            return HttpResponseRedirect(reverse("admin:accounts_apikey_changelist"))
        plain_key = None
        waiting = request.session.pop(NEW_KEY_SESSION, None)
        if waiting:
            try:
                opened = _new_key_cipher().decrypt(waiting.encode(), ttl=NEW_KEY_SECONDS)
                shown_pk, plain = opened.decode().split(":", 1)
            except InvalidToken:
                shown_pk, plain = "", None
            plain_key = plain if shown_pk == str(pk) else None
        context = {**self.admin_site.each_context(request), "opts": self.opts, "key": key, "plain_key": plain_key,
                   "title": "API key created" if plain_key else "API key already shown"}
        return TemplateResponse(request, "admin/accounts/apikey/created.html", context)

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = 0
        for key in queryset.filter(revoked_at__isnull=True):
            key.revoke()
            self.log_change(request, key, f"Revoked at {timezone.now():%Y-%m-%d %H:%M:%S} UTC")
            revoked += 1
        messages.success(request, f"{revoked} API key(s) revoked.")
