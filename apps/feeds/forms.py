"""The feed form of the admin: a rules feed's rules as form fields, stored as the feed's JSON rules."""

import re

from django import forms
from django.core.exceptions import ValidationError

from apps.accounts.models import Label
from apps.accounts.profiles import shown_handles

from . import rules
from .models import Feed, Kind

_LIST = re.compile(r"[\s,]+")


def _listed(text):
    return [item for item in _LIST.split(text) if item]


def _shown_accounts(dids):
    """The accounts of saved rules as the form shows them: handles where the index names them, else DIDs."""
    if not dids:
        return []
    shown = shown_handles(dids)
    return [shown[did] for did in dids]


class RulesForm(forms.Form):
    """Rules typed as people write them ("quoted phrases", #tags, pt-BR), checked by `rules.validate`."""

    words = forms.CharField(
        required=False, label="Any of these words",
        help_text='Words and "quoted phrases"; a post with any of them (or any of the hashtags) is in.',
    )
    hashtags = forms.CharField(required=False, help_text="e.g. #caturday #art, matched as #tag in the text")
    languages = forms.CharField(required=False, help_text="Language tags, e.g. ja or pt pt-BR; any of them")
    media = forms.ChoiceField(choices=[
        ("any", "Any post"), ("with", "Only posts with images or video"), ("without", "Only posts without"),
    ], initial="any")
    labels = forms.ModelMultipleChoiceField(
        Label.objects.all(), to_field_name="name", required=False, widget=forms.CheckboxSelectMultiple,
        label="From members of", help_text="With the accounts below: only posts by these authors",
    )
    accounts = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="From these accounts",
        help_text="Handles or DIDs, one per line; a handle is saved as its account's DID",
    )
    exclude_replies = forms.BooleanField(required=False, label="Leave out replies")
    exclude_words = forms.CharField(required=False, label="Leave out these words", help_text='Words and "phrases"')
    min_likes = forms.IntegerField(required=False, min_value=0, label="At least this many likes")
    min_reposts = forms.IntegerField(required=False, min_value=0, label="At least this many reposts")
    hours = forms.IntegerField(required=False, min_value=1, max_value=rules.MAX_HOURS, label="Within the last hours")
    order = forms.ChoiceField(choices=[("newest", "Newest first"), ("hot", "Hot (likes decayed by age)")])
    followed_only = forms.BooleanField(
        required=False, label="Only accounts the viewer follows",
        help_text="Each viewer sees their own list; signed-out viewers are asked to sign in",
    )

    def initial_from(self, stored):
        shown = {**rules.DEFAULTS, **stored}
        quoted = [f'"{term}"' if " " in term else term for term in shown["words"]]
        excluded = [f'"{term}"' if " " in term else term for term in shown["exclude_words"]]
        self.initial.update({
            **shown, "words": " ".join(quoted), "exclude_words": " ".join(excluded),
            "hashtags": " ".join(f"#{tag}" for tag in shown["hashtags"]), "languages": " ".join(shown["languages"]),
            "accounts": "\n".join(_shown_accounts(shown["accounts"])),
        })

    def typed_rules(self):
        """The rules typed, validated (only what differs from the defaults), or None with the errors added."""
        data = self.cleaned_data
        try:
            typed = {
                "words": rules.split_terms(data.get("words", "")),
                "exclude_words": rules.split_terms(data.get("exclude_words", "")),
            }
        except ValidationError as exc:
            self.add_error("words", exc)
            return None
        typed.update({
            "hashtags": [tag.lstrip("#").lower() for tag in _listed(data.get("hashtags", ""))],
            "languages": _listed(data.get("languages", "")),
            "labels": [label.name for label in data.get("labels", [])],
        })
        try:
            typed["accounts"] = rules.resolve_accounts(_listed(data.get("accounts", "")))
        except ValidationError as exc:
            self.add_error("accounts", exc)
            typed["accounts"] = []  # the other rules are still checked, so every error shows at once
        typed.update({name: data[name] for name in ("media", "exclude_replies", "min_likes", "min_reposts", "hours",
                                                    "order", "followed_only") if data.get(name) is not None})
        try:
            checked = rules.validate(typed)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                if name in self.fields and name not in self.errors:
                    self.add_error(name, messages)
            return None
        if "accounts" in self.errors:
            return None
        return {name: value for name, value in checked.items() if value != rules.DEFAULTS[name]}


RULE_FIELDS = list(RulesForm.base_fields)


class FeedForm(RulesForm, forms.ModelForm):
    class Meta:
        model = Feed
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial_from(self.instance.rules or {})

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") != Kind.RULES:
            self.instance.rules = {}
        else:
            chosen = self.typed_rules()
            if chosen is not None:
                self.instance.rules = chosen
        return cleaned
