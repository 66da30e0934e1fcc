"""Small presentation helpers for the dashboard templates."""

from datetime import timedelta

from django import template
from django.utils.formats import number_format
from django.utils.translation import ngettext

register = template.Library()


@register.filter
def thousands(value: int | None) -> str:
    """1234567 as "1,234,567" in English and "1.234.567" in Danish."""
    return number_format(value or 0, force_grouping=True)


@register.filter
def timedelta_text(value: timedelta) -> str:
    """A duration in words: "1 hour", "90 minutes"."""
    minutes = int(value.total_seconds() // 60)
    if minutes and minutes % 60 == 0:
        hours = minutes // 60
        return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}
    return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}
