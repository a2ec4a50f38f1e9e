"""`{% skyline_dashboard as dashboard %}`: the admin index's figures (see apps.accounts.dashboard)."""

from django import template

from apps.accounts import dashboard

register = template.Library()


@register.simple_tag
def skyline_dashboard():
    return dashboard.summary()
