"""``{% incident_banner %}``: the notice on every dashboard page while an incident is open."""

from __future__ import annotations

from typing import Any

from django import template

from monitoring import banner

register = template.Library()


@register.inclusion_tag("monitoring/banner.html")
def incident_banner() -> dict[str, Any]:
    return {"notices": banner.current()}
