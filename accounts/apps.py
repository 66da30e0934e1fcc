from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Customer accounts")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from accounts.acting import on_signed_out

        user_logged_out.connect(on_signed_out, dispatch_uid="accounts.acting.on_signed_out")
