import sys
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from accounts import services
from accounts.models import CUSTOMER_ROLES, Account, Role
from heyloyalty.commands import OperationsCommand, validation_error


class Command(OperationsCommand):
    help = (
        "Create a user. Without --password-stdin a strong password is generated and "
        "printed once. Either way the user must change it at the first sign-in."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument("--account", type=int, metavar="ID")
        parser.add_argument("--role", choices=[r.value for r in Role], default=Role.USER.value)
        parser.add_argument(
            "--password-stdin", action="store_true", help="read the password from standard input"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        role = Role(options["role"])
        account = None
        if role in CUSTOMER_ROLES:
            if options["account"] is None:
                raise CommandError(f"--account is required for the role {role.value}")
            account = Account.objects.filter(pk=options["account"]).first()
            if account is None:
                raise CommandError(f"--account: no account with the id {options['account']}")
        elif options["account"] is not None:
            raise CommandError(f"--account: a user with the role {role.value} has no account")

        generated = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin: standard input held no password")
        else:
            password = generated = services.password_generate()
        try:
            user = services.user_create(
                email=options["email"],
                name=options["name"],
                role=role,
                account=account,
                password=password,
            )
        except ValidationError as error:
            raise validation_error(error) from error
        result = {
            "id": user.pk,
            "email": user.email,
            "role": user.role,
            "account": account.pk if account else None,
            "must_change_password": user.must_change_password,
        }
        text = f"Created {user.role} {user.email} (id {user.pk})"
        if generated:
            result["password"] = generated
            text += f"\nPassword (shown once, to be changed at the first sign-in): {generated}"
        self.emit(options, result, text)
