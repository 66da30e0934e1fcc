"""Forms of the admin panel for accounts and users."""

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import PasswordChoiceForm
from accounts.models import CUSTOMER_ROLES, User, normalize_email


class RoleAccountMixin:
    """Owners and users belong to an account; account managers and main admins to none."""

    def clean_role_and_account(self, data: dict[str, Any]) -> None:
        role, account = data.get("role"), data.get("account")
        form: Any = self
        if role in CUSTOMER_ROLES and account is None:
            form.add_error("account", _("An owner or user belongs to a customer account."))
        if role and role not in CUSTOMER_ROLES and account is not None:
            form.add_error("account", _("Account managers and main admins belong to no account."))


class UserAddForm(RoleAccountMixin, PasswordChoiceForm, forms.ModelForm):
    class Meta:
        model = User
        fields = ["email", "name", "role", "account"]

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        if User.objects.filter(email=email).exists():
            raise forms.ValidationError(_("A user with this email already exists."))
        return email

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self.clean_role_and_account(data)
        self.check_password_choice(
            data, User(email=data.get("email", ""), name=data.get("name", ""))
        )
        return data


class UserChangeForm(RoleAccountMixin, forms.ModelForm):
    class Meta:
        model = User
        fields = ["email", "name", "role", "account", "is_active"]

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self.clean_role_and_account(data)
        return data
