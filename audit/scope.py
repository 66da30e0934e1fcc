"""Which customer account a request by staff touches.

The audit middleware asks ``admin_scope`` about admin pages: every ModelAdmin of a
customer-owned model (one whose rows reach an Account) is in scope, its list, add,
change, delete and history pages and its own extra pages. The account is the object's
(from the id in the URL), the one a list is filtered to, or the one an add form names.
An extra page whose URL names the account as ``for_account`` (asking for access) is
logged against that account without a consent check.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.db import models
from django.http import HttpRequest
from django.urls import ResolverMatch

from accounts.models import Account, User

# Query parameters that filter an admin list to one account.
ACCOUNT_FILTERS = ("account", "account_id", "account__id", "account__id__exact", "account__exact")
# The admin's own names for a ModelAdmin's pages -> the audit action (GET, POST).
ADMIN_ACTIONS = {
    "changelist": ("admin.list", "admin.list_action"),
    "add": ("admin.add_form", "admin.add"),
    "change": ("admin.view", "admin.change"),
    "delete": ("admin.delete_form", "admin.delete"),
    "history": ("admin.history", "admin.history"),
}


def account_path(model: type[models.Model], depth: int = 3) -> str | None:
    """The ORM path from ``model`` to its account's id, or None when it has none.

    ``Account`` -> "pk"; a model with an ``account`` foreign key -> "account_id"; else
    the first foreign key, other than to a user, whose model has a path (a member ->
    "list__account_id").
    """
    if issubclass(model, Account):
        return "pk"
    if depth == 0:
        return None
    fields = [f for f in model._meta.get_fields() if isinstance(f, models.ForeignKey)]
    for field in fields:
        if field.related_model is Account:
            return f"{field.name}_id"
    for field in fields:
        related = field.related_model
        # Not through a user: "created by", "actor" name a person, whose account (if
        # any) is not the account the row belongs to.
        if isinstance(related, type) and related not in (model, User):
            inner = account_path(related, depth - 1)
            if inner is not None:
                return f"{field.name}__{inner}"
    return None


@dataclass(frozen=True)
class AdminPage:
    model: type[models.Model]
    page: str  # "changelist", "add", "change", "delete", "history" or the extra page's name
    account_path: str


@cache
def _admin_pages() -> dict[str, AdminPage]:
    """URL name -> page, for every ModelAdmin of a customer-owned model."""
    pages: dict[str, AdminPage] = {}
    for model, model_admin in admin.site._registry.items():
        path = account_path(model)
        if path is None:
            continue
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if name:
                pages[name] = AdminPage(model, name.removeprefix(prefix), path)
    return pages


@dataclass(frozen=True)
class Scope:
    """What an admin request touches: the action to record, the account (None: several
    or none yet), and the object, when the URL names one."""

    action: str
    account_id: int | None
    target: models.Model | None = None
    target_type: str = ""
    target_id: str = ""
    # False for the pages where staff ask for access: logged, not refused.
    check: bool = True
    account: Account | None = None  # the account itself, when already loaded
    # An admin action on rows of several accounts: each of them (account_id is None).
    accounts: tuple[int, ...] = ()


def admin_scope(request: HttpRequest, match: ResolverMatch) -> Scope | None:
    """The scope of an admin request, or None when it touches no customer-owned model."""
    page = _admin_pages().get(match.url_name or "")
    if page is None:
        return None
    get_action, post_action = ADMIN_ACTIONS.get(
        page.page, (f"admin.{page.page}", f"admin.{page.page}")
    )
    action = post_action if request.method == "POST" else get_action
    if "for_account" in match.kwargs:
        # A page about an account that staff may open without access to it (asking for
        # access): logged against the account, but not refused by the middleware.
        account_id = _int(match.kwargs["for_account"])
        return Scope(action, account_id, None, "accounts.account", str(account_id), check=False)
    object_id = _object_id(match.kwargs, page.model)
    if object_id is not None:
        return _object_scope(page, action, object_id)
    label = page.model._meta.label_lower
    if page.page == "changelist" and request.method == "POST":
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if selected and request.POST.get("select_across") != "1":
            return _action_scope(page, action, selected)
    return Scope(action, _filtered_account(request, page), None, label)


def _action_scope(page: AdminPage, action: str, selected: list[str]) -> Scope:
    """An admin action on the rows ticked in a list: the accounts they belong to."""
    label = page.model._meta.label_lower
    try:
        pks = [page.model._meta.pk.to_python(unquote(pk)) for pk in selected]
    except Exception:  # a malformed id finds nothing; the admin says so
        return Scope(action, None, None, label)
    found = page.model._default_manager.filter(pk__in=pks).values_list(page.account_path, flat=True)
    accounts = tuple(sorted({a for a in found if a is not None}))
    if len(accounts) == 1:
        return Scope(action, accounts[0], None, label)
    return Scope(action, None, None, label, accounts=accounts)


def _object_id(kwargs: dict[str, Any], model: type[models.Model]) -> str | None:
    for name in ("object_id", "pk", f"{model._meta.model_name}_id", "id"):
        if name in kwargs:
            return unquote(str(kwargs[name]))
    return None


def _object_scope(page: AdminPage, action: str, object_id: str) -> Scope:
    """The object with its account, in one query."""
    label = page.model._meta.label_lower
    try:
        pk = page.model._meta.pk.to_python(object_id)
    except Exception:  # a malformed id finds nothing; the view says so
        return Scope(action, None, None, label, object_id[:64])
    objects = page.model._default_manager.filter(pk=pk)
    relation = page.account_path.removesuffix("_id")  # "account", "list__account"
    if page.account_path != "pk":
        objects = objects.select_related(relation)
    target = objects.first()
    if target is None:
        return Scope(action, None, None, label, object_id[:64])
    account: Any = target
    if page.account_path != "pk":
        for step in relation.split("__"):
            account = getattr(account, step) if account is not None else None
    account_id = account.pk if account is not None else None
    return Scope(action, account_id, target, label, str(target.pk), account=account)


def _filtered_account(request: HttpRequest, page: AdminPage) -> int | None:
    """The account a list is filtered to, or an add form is for."""
    source = request.POST if page.page == "add" and request.method == "POST" else request.GET
    if page.page == "add" and "account" in source:
        return _int(source.get("account"))
    for name in ACCOUNT_FILTERS:
        if name in source:
            return _int(source.get(name))
    if page.account_path == "pk":
        for name in ("id", "id__exact", "pk"):
            if name in source:
                return _int(source.get(name))
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
