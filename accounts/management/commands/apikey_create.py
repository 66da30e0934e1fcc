from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from accounts import services
from accounts.models import Account, ApiScope
from heyloyalty.commands import OperationsCommand


class Command(OperationsCommand):
    help = "Create an API key for an account. The secret is printed once."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--account", type=int, required=True, metavar="ID")
        parser.add_argument("--name", default="API key")
        parser.add_argument("--scope", choices=[s.value for s in ApiScope], default="read_write")

    def handle(self, *args: Any, **options: Any) -> None:
        account = Account.objects.filter(pk=options["account"]).first()
        if account is None:
            raise CommandError(f"--account: no account with the id {options['account']}")
        api_key, secret = services.apikey_create(
            account=account, name=options["name"], scope=ApiScope(options["scope"])
        )
        self.emit(
            options,
            {
                "id": api_key.pk,
                "account": account.pk,
                "name": api_key.name,
                "key": api_key.key,
                "secret": secret,
                "scope": api_key.scope,
            },
            f"API key {api_key.key}\nSecret (shown once): {secret}",
        )
