"""Forms of the admin panel for accounts and users."""

from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.utils.translation import gettext_lazy as _

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


class UserAddForm(RoleAccountMixin, forms.ModelForm):
    generate = forms.BooleanField(
        label=_("Generate a strong password"),
        required=False,
        initial=True,
        help_text=_("Shown to you once. The user must change it at the first sign-in."),
    )
    password = forms.CharField(
        label=_("Or type a password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

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
        typed = data.get("password")
        if typed:
            probe = User(email=data.get("email", ""), name=data.get("name", ""))
            try:
                validate_password(typed, probe)
            except forms.ValidationError as error:
                self.add_error("password", error)
        elif not data.get("generate"):
            self.add_error("password", _("Type a password or tick 'Generate a strong password'."))
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
