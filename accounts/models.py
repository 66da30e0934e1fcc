"""The tenant (Account) and the people who sign in (User)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils.timezone import now
from django.utils.translation import gettext_lazy as _


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not a known time zone."), params={"value": value})


def normalize_email(email: str) -> str:
    """Emails sign in case-insensitively: we keep them lower-case, trimmed."""
    return email.strip().lower()


class ManagerAccess(models.TextChoices):
    """Whether the assigned account manager may enter the account without asking."""

    ALLOWED = "allowed", _("Allowed: my account manager may work in my account")
    ASK = "ask", _("Ask first: my account manager must ask me each time")


class Account(models.Model):
    """A customer: the tenant that owns lists, members, campaigns and API keys."""

    name = models.CharField(_("name"), max_length=200)
    timezone = models.CharField(
        _("time zone"), max_length=64, default="Europe/Copenhagen", validators=[validate_timezone]
    )
    default_from_name = models.CharField(_("default sender name"), max_length=200, blank=True)
    default_from_email = models.EmailField(_("default sender email"), blank=True)
    manager = models.ForeignKey(
        "accounts.User",
        verbose_name=_("account manager"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_accounts",
        limit_choices_to={"role": "manager"},
    )
    manager_access = models.CharField(
        _("account manager access"),
        max_length=16,
        choices=ManagerAccess.choices,
        default=ManagerAccess.ASK,
        help_text=_("Chosen by the customer when the agreement is made."),
    )
    created_at = models.DateTimeField(_("created"), default=now)

    class Meta:
        verbose_name = _("customer account")
        verbose_name_plural = _("customer accounts")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    USER = "user", _("User")
    MANAGER = "manager", _("Account manager")
    ADMIN = "admin", _("Main admin")


CUSTOMER_ROLES = (Role.OWNER, Role.USER)
STAFF_ROLES = (Role.MANAGER, Role.ADMIN)

# What an account manager may do in the admin panel: the accounts assigned to
# them and those accounts' users. A main admin may do everything.
MANAGER_PERMISSIONS = frozenset(
    {
        "accounts.view_account",
        "accounts.add_account",
        "accounts.change_account",
        "accounts.view_user",
        "accounts.add_user",
        "accounts.change_user",
    }
)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email=normalize_email(username or ""))

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra["role"] = Role.ADMIN
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """Someone who signs in with an email: a customer (owner, user) or staff."""

    email = models.EmailField(_("email"), unique=True)
    name = models.CharField(_("name"), max_length=150, blank=True)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    account = models.ForeignKey(
        Account,
        verbose_name=_("account"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="users",
    )
    is_active = models.BooleanField(_("active"), default=True)
    must_change_password = models.BooleanField(
        _("must change password"),
        default=False,
        help_text=_("Set when someone else chose the password; cleared when the user changes it."),
    )
    password_changed_at = models.DateTimeField(_("password changed"), null=True, blank=True)
    date_joined = models.DateTimeField(_("date joined"), default=now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
            models.CheckConstraint(
                condition=(
                    models.Q(role__in=CUSTOMER_ROLES, account__isnull=False)
                    | models.Q(role__in=STAFF_ROLES, account__isnull=True)
                ),
                name="user_customer_has_account_staff_has_none",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    # Derived from the role, so they can never disagree with it.
    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_superuser(self) -> bool:  # type: ignore[override]
        return self.role == Role.ADMIN

    @property
    def is_manager(self) -> bool:
        return self.role == Role.MANAGER

    @property
    def is_customer(self) -> bool:
        return self.role in CUSTOMER_ROLES

    def has_perm(self, perm: str, obj: object = None) -> bool:
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        return self.is_manager and perm in MANAGER_PERMISSIONS

    def has_module_perms(self, app_label: str) -> bool:
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        return self.is_manager and any(p.startswith(f"{app_label}.") for p in MANAGER_PERMISSIONS)

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else self.email


class ApiScope(models.TextChoices):
    READ = "read", _("Read only")
    READ_WRITE = "read_write", _("Read and write")


class ApiKey(models.Model):
    """A key for the REST API. The secret is kept encrypted with the key ring (it is
    needed in plain form to check request signatures), shown once when made."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(_("name"), max_length=100)
    key = models.CharField(_("key"), max_length=64, unique=True)
    secret_encrypted = models.TextField(editable=False)
    scope = models.CharField(
        _("scope"), max_length=16, choices=ApiScope.choices, default=ApiScope.READ_WRITE
    )
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key[:8]}…)"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# Consent: where the account's ``manager_access`` is ASK, the account manager asks the
# owners (AccessRequest, mailed with signed links) and an approval opens a grant for a
# time the customer chooses (AccessGrant). accounts/consent.py holds the logic.
ACCESS_LINK_HOURS = 72  # how long the approve and deny links in the mail work
GRANT_MAX_HOURS = 24  # the longest grant a customer can give
GRANT_HOURS_CHOICES = (1, 4, 8, 24)


class AccessRequestStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for an answer")
    APPROVED = "approved", _("Approved")
    DENIED = "denied", _("Denied")
    EXPIRED = "expired", _("Expired")


class AccessRequest(models.Model):
    """An account manager's request to work in an account whose owners must approve."""

    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="access_requests"
    )
    manager = models.ForeignKey(
        User,
        verbose_name=_("account manager"),
        on_delete=models.CASCADE,
        related_name="access_requests",
    )
    reason = models.TextField(_("reason"))
    created_at = models.DateTimeField(_("requested"), default=now)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=AccessRequestStatus.choices,
        default=AccessRequestStatus.PENDING,
    )
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decided_by = models.ForeignKey(
        User,
        verbose_name=_("decided by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Part of the signed links in the mail; emptied by the decision, so a link works once.
    nonce = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        verbose_name = _("access request")
        verbose_name_plural = _("access requests")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "status"], name="accessrequest_account_status")]

    def __str__(self) -> str:
        return f"{self.manager} → {self.account} ({self.status})"


class AccessGrant(models.Model):
    """Access for one account manager to one account until ``expires_at`` (at most
    24 hours after it was given), unless the customer revokes it first."""

    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="access_grants"
    )
    manager = models.ForeignKey(
        User,
        verbose_name=_("account manager"),
        on_delete=models.CASCADE,
        related_name="access_grants",
    )
    request = models.OneToOneField(
        AccessRequest,
        verbose_name=_("request"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="grant",
    )
    created_at = models.DateTimeField(_("granted"), default=now)
    expires_at = models.DateTimeField(_("expires"))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        User,
        verbose_name=_("revoked by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("access grant")
        verbose_name_plural = _("access grants")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["manager", "account", "expires_at"], name="accessgrant_lookup")
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__gt=models.F("created_at"))
                & models.Q(
                    expires_at__lte=models.F("created_at") + timedelta(hours=GRANT_MAX_HOURS)
                ),
                name="accessgrant_at_most_24_hours",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.manager} → {self.account} until {self.expires_at:%Y-%m-%d %H:%M}"

    def is_active(self, at: datetime | None = None) -> bool:
        return self.revoked_at is None and self.expires_at > (at or now())


class ActingSession(models.Model):
    """A member of staff working in a customer's dashboard on their behalf
    (accounts/acting.py). Kept in the database, not only in the browser session, so that
    every session's end is logged on time, also when the browser never comes back."""

    user = models.ForeignKey(
        User, verbose_name=_("staff member"), on_delete=models.CASCADE, related_name="+"
    )
    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="+"
    )
    grant = models.ForeignKey(
        AccessGrant,
        verbose_name=_("access grant"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    started_at = models.DateTimeField(_("started"), default=now)
    last_seen_at = models.DateTimeField(_("last seen"), default=now)
    # 4 hours after the start, or the grant's end if that comes first.
    ends_at = models.DateTimeField(_("ends"))
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    end_reason = models.CharField(_("why it ended"), max_length=32, blank=True)

    class Meta:
        verbose_name = _("session on a customer's behalf")
        verbose_name_plural = _("sessions on a customer's behalf")
        indexes = [
            models.Index(
                fields=["ends_at"],
                condition=models.Q(ended_at__isnull=True),
                name="actingsession_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} from {self.started_at:%Y-%m-%d %H:%M}"
