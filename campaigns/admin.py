"""Sender domains in the admin panel: the domains a customer may send campaigns from.

Staff verify them (customers cannot), scoped like accounts.admin: an account manager sees
and changes the domains of the accounts assigned to them, a main admin every one. The
account managers' rights here come from this ModelAdmin rather than MANAGER_PERMISSIONS,
so the rule sits next to the scoping it depends on.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.admin import CreateThroughServiceAdmin
from accounts.models import User
from accounts.selectors import accounts_visible_to
from campaigns import services
from campaigns.errors import CampaignError
from campaigns.models import SenderDomain


def _staff(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not user.is_active or not user.is_staff:
        raise PermissionDenied
    return user


class SenderDomainForm(forms.ModelForm):
    class Meta:
        model = SenderDomain
        fields = ["account", "domain", "verified"]

    def clean_domain(self) -> str:
        try:
            return services.domain_normalize(self.cleaned_data["domain"])
        except CampaignError as error:
            raise forms.ValidationError(error.errors["domain"]) from None


@admin.register(SenderDomain)
class SenderDomainAdmin(CreateThroughServiceAdmin):
    form = SenderDomainForm
    list_display = ["domain", "account", "verified", "created_at"]
    list_filter = ["verified"]
    search_fields = ["domain", "account__name"]
    list_select_related = ["account"]
    actions = ["verify", "unverify"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SenderDomain]:
        accounts = accounts_visible_to(staff=_staff(request))
        return SenderDomain.objects.filter(account__in=accounts.values("pk"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A domain stays with its account; add it to another account instead.
        return ["account", "created_at"] if obj is not None else []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "account":
            kwargs["queryset"] = accounts_visible_to(staff=_staff(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _is_staff(self, request: HttpRequest) -> bool:
        try:
            return _staff(request) is not None
        except PermissionDenied:
            return False

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_staff(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_staff(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._is_staff(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_staff(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_staff(request)

    def create(self, request: HttpRequest, data: dict[str, Any]) -> SenderDomain:
        return services.sender_domain_add(
            account=data["account"], domain=data["domain"], verified=data.get("verified", False)
        )

    def delete_model(self, request: HttpRequest, obj: SenderDomain) -> None:
        services.sender_domain_delete(sender_domain=obj)

    @admin.action(description=_("Mark as verified"))
    def verify(self, request: HttpRequest, queryset: QuerySet[SenderDomain]) -> None:
        for sender_domain in queryset:
            services.sender_domain_verify(sender_domain=sender_domain, verified=True)

    @admin.action(description=_("Mark as not verified"))
    def unverify(self, request: HttpRequest, queryset: QuerySet[SenderDomain]) -> None:
        for sender_domain in queryset:
            services.sender_domain_verify(sender_domain=sender_domain, verified=False)
