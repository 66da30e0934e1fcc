from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts import services
from accounts.models import ManagerAccess, Role, User, normalize_email
from heyloyalty.commands import OperationsCommand, validation_error


class Command(OperationsCommand):
    help = "Create a customer account."

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--name", required=True)
        parser.add_argument("--manager", metavar="EMAIL", help="the account manager's email")
        parser.add_argument(
            "--no-manager-access",
            action="store_true",
            help="the customer wants to be asked before the account manager enters",
        )
        parser.add_argument("--timezone", default="Europe/Copenhagen")

    def handle(self, *args: Any, **options: Any) -> None:
        manager = None
        if options["manager"]:
            email = normalize_email(options["manager"])
            manager = User.objects.filter(email=email, role=Role.MANAGER).first()
            if manager is None:
                raise CommandError(f"--manager: no account manager with the email {email}")
        access = ManagerAccess.ASK if options["no_manager_access"] else ManagerAccess.ALLOWED
        try:
            account = services.account_create(
                name=options["name"],
                manager=manager,
                manager_access=access,
                timezone_name=options["timezone"],
            )
        except ValidationError as error:
            raise validation_error(error) from error
        self.emit(
            options,
            {
                "id": account.pk,
                "name": account.name,
                "manager": manager.email if manager else None,
                "manager_access": account.manager_access,
                "timezone": account.timezone,
            },
            f"Created account {account.pk}: {account.name}",
        )
