"""Every write to accounts and users.

A password is handled here and nowhere else: it is validated, hashed with argon2id
by ``set_password`` and never stored, logged, mailed or returned in plain text.
The only exception is a generated password, which the caller shows once to the
account manager who asked for it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.contrib.auth.password_validation import validate_password
from django.db import models, transaction
from django.utils import timezone

from accounts.models import (
    CUSTOMER_ROLES,
    Account,
    ApiKey,
    ApiScope,
    ManagerAccess,
    Role,
    User,
    normalize_email,
)
from audit.services import record
from heyloyalty import keys

# No look-alikes (0/O, 1/l/I), so a password read off a screen is typed right.
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def password_generate(*, groups: int = 4, group_size: int = 5) -> str:
    """A random password such as ``h7Kqz-Wm3pa-...``: about 120 bits of entropy."""
    return "-".join(
        "".join(secrets.choice(_ALPHABET) for _ in range(group_size)) for _ in range(groups)
    )


@transaction.atomic
def account_create(
    *,
    name: str,
    manager_access: ManagerAccess,
    manager: User | None = None,
    timezone_name: str = "Europe/Copenhagen",
    default_from_name: str = "",
    default_from_email: str = "",
) -> Account:
    if manager is not None and not manager.is_manager:
        raise ValueError(f"{manager.email} is not an account manager")
    account = Account(
        name=name.strip(),
        manager=manager,
        manager_access=manager_access,
        timezone=timezone_name,
        default_from_name=default_from_name,
        default_from_email=default_from_email,
    )
    account.full_clean()
    account.save()
    return account


@transaction.atomic
def user_create(
    *,
    email: str,
    role: Role,
    password: str,
    account: Account | None = None,
    name: str = "",
    must_change_password: bool = True,
    created_by: User | None = None,
) -> User:
    """Create a user. ``must_change_password`` stays on unless the user chose the password.
    Made by a member of staff (``created_by``), the first password is theirs: audited as
    a password set, as every later one is."""
    if (role in CUSTOMER_ROLES) != (account is not None):
        raise ValueError("owners and users belong to an account; staff belong to none")
    user = User(email=normalize_email(email), role=role, account=account, name=name.strip())
    user.full_clean(exclude=["password"])
    validate_password(password, user)
    user.set_password(password)
    user.must_change_password = must_change_password
    user.password_changed_at = timezone.now()
    with transaction.atomic():
        user.save()
        if created_by is not None:
            record(
                "auth.password_set",
                actor=created_by,
                account=user.account_id,
                target=user,
                extra={"by_someone_else": True, "new_user": True},  # never the password
            )
    return user


@transaction.atomic
def user_set_password(*, user: User, password: str, set_by: User) -> None:
    """Set a password. Set by anyone else, it must be changed at the next sign-in,
    so that afterwards nobody but the user knows it."""
    validate_password(password, user)
    user.set_password(password)
    user.must_change_password = set_by.pk != user.pk
    user.password_changed_at = timezone.now()
    user.save(update_fields=["password", "must_change_password", "password_changed_at"])
    record(
        "auth.password_set",
        actor=set_by,
        account=user.account_id,
        target=user,
        extra={"by_someone_else": set_by.pk != user.pk},  # never the password
    )


@transaction.atomic
def apikey_create(
    *,
    account: Account,
    name: str,
    scope: ApiScope = ApiScope.READ_WRITE,
    created_by: User | None = None,
) -> tuple[ApiKey, str]:
    """A new key; returns it with its secret, which is shown once and stored encrypted."""
    if not name.strip():
        raise ValueError("an API key needs a name")
    secret = secrets.token_hex(32)
    api_key = ApiKey.objects.create(
        account=account,
        name=name.strip(),
        key=secrets.token_hex(16),
        secret_encrypted=keys.encrypt(secret),
        scope=scope,
        created_by=created_by,
    )
    record(
        "apikey.created",
        actor=created_by,
        account=account,
        target=api_key,
        extra={"key": api_key.key[:8], "scope": api_key.scope},  # never the secret
    )
    return api_key, secret


@transaction.atomic
def apikey_revoke(*, api_key: ApiKey, revoked_by: User | None = None) -> None:
    revoked = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if revoked:
        record(
            "apikey.revoked",
            actor=revoked_by,
            account=api_key.account_id,
            target=api_key,
            extra={"key": api_key.key[:8]},
        )


def apikey_touch(*, api_key: ApiKey) -> None:
    """Record use at most once a minute, so a busy key costs no write per request."""
    moment = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk).filter(
        models.Q(last_used_at__isnull=True)
        | models.Q(last_used_at__lt=moment - timedelta(minutes=1))
    ).update(last_used_at=moment)
