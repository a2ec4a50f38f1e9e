"""`{% skyline_dashboard as dashboard %}`: the admin index's figures (see skyline.dashboard)."""

from django import template

from skyline import dashboard

register = template.Library()


@register.simple_tag
def skyline_dashboard():
    return dashboard.summary()
