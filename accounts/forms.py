from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.contrib.auth.password_validation import (
    password_validators_help_text_html,
    validate_password,
)
from django.utils.translation import gettext_lazy as _

from accounts.models import User


class SignInForm(AuthenticationForm):
    username = forms.EmailField(
        label=_("Email"),
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    error_messages = {
        # One message for an unknown email and a wrong password: no one learns
        # which emails have an account.
        "invalid_login": _("That email and password do not match. Check both and try again."),
        "inactive": _("This account is switched off. Contact your account manager."),
    }


class OwnPasswordChangeForm(PasswordChangeForm):
    """The user's own change; the service clears ``must_change_password``."""

    def save(self, commit: bool = True) -> Any:
        from accounts.services import user_set_password

        user = self.user
        user_set_password(user=user, password=self.cleaned_data["new_password1"], set_by=user)
        return user


class PasswordChoiceForm(forms.Form):
    """Staff choose a password for someone else: generated (shown once) or typed."""

    generate = forms.BooleanField(
        label=_("Generate a strong password"),
        required=False,
        initial=True,
        help_text=_("It is shown to you once. The user must change it at the next sign-in."),
    )
    password = forms.CharField(
        label=_("Or type a password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )

    def check_password_choice(self, data: dict[str, Any], user: User) -> None:
        typed = data.get("password")
        if typed:
            try:
                validate_password(typed, user)
            except forms.ValidationError as error:
                self.add_error("password", error)
        elif not data.get("generate"):
            self.add_error("password", _("Type a password or tick 'Generate a strong password'."))


class SetPasswordByManagerForm(PasswordChoiceForm):
    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self.check_password_choice(data, self.user)
        return data
