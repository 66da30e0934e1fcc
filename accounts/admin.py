"""The admin panel for customer accounts and users.

An account manager sees and changes only the accounts assigned to them and those
accounts' users; a main admin sees everything. Scoping lives in the selectors, so a
direct URL to another manager's account finds nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import services
from accounts.admin_forms import UserAddForm, UserChangeForm
from accounts.forms import SetPasswordByManagerForm
from accounts.models import CUSTOMER_ROLES, Account, ManagerAccess, Role, User
from accounts.selectors import accounts_visible_to, users_visible_to

sensitive = method_decorator(sensitive_post_parameters("password"))


def _staff(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User) or not user.is_staff:
        raise PermissionDenied
    return user


def _password_shown_once(request: HttpRequest, user: User, password: str) -> HttpResponse:
    response = render(
        request,
        "admin/accounts/user/password_shown.html",
        {
            **admin.site.each_context(request),
            "title": _("New password for %(email)s") % {"email": user.email},
            "target": user,
            "password": password,
            "opts": User._meta,
            "has_view_permission": True,
        },
    )
    add_never_cache_headers(response)
    return response


class CreateThroughServiceAdmin(admin.ModelAdmin):
    """Adding an object calls the app's service (validation, hashing, audit); changing
    one saves the form as usual."""

    def create(self, request: HttpRequest, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def save_form(self, request: HttpRequest, form: ModelForm, change: bool) -> Any:
        if change:
            return form.save(commit=False)
        return self.create(request, form.cleaned_data)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            obj.save()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)


@admin.register(Account)
class AccountAdmin(CreateThroughServiceAdmin):
    list_display = ["name", "manager", "manager_access", "user_count", "created_at"]
    list_filter = ["manager_access"]
    search_fields = ["name"]
    fields = [
        "name",
        "manager",
        "manager_access",
        "timezone",
        "default_from_name",
        "default_from_email",
        "created_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return accounts_visible_to(staff=_staff(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = ["created_at"]
        if not _staff(request).is_superuser:
            # A manager cannot hand an account to someone else.
            readonly.append("manager")
        return readonly

    @admin.display(description=gettext_lazy("users"), ordering="user_count")
    def user_count(self, obj: Account) -> int:
        return obj.user_count  # type: ignore[attr-defined]

    def create(self, request: HttpRequest, data: dict[str, Any]) -> Account:
        staff = _staff(request)
        return services.account_create(
            name=data["name"],
            manager=data.get("manager") if staff.is_superuser else staff,
            manager_access=ManagerAccess(data["manager_access"]),
            timezone_name=data["timezone"],
            default_from_name=data.get("default_from_name", ""),
            default_from_email=data.get("default_from_email", ""),
        )


@admin.register(User)
class UserAdmin(CreateThroughServiceAdmin):
    list_display = ["email", "name", "role", "account", "is_active", "must_change_password"]
    list_filter = ["role", "is_active", "must_change_password"]
    search_fields = ["email", "name", "account__name"]
    list_select_related = ["account"]
    readonly_fields = ["password_link", "must_change_password", "last_login", "date_joined"]
    form = UserChangeForm
    add_form = UserAddForm

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return users_visible_to(staff=_staff(request))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [
                (None, {"fields": ["email", "name", "role", "account"]}),
                (_("Password"), {"fields": ["generate", "password"]}),
            ]
        return [
            (None, {"fields": ["email", "name", "role", "account", "is_active"]}),
            (_("Password"), {"fields": ["password_link", "must_change_password"]}),
            (_("Activity"), {"fields": ["last_login", "date_joined"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else self.readonly_fields

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
            kwargs["fields"] = None
        return super().get_form(request, obj, change=change, **kwargs)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "account":
            kwargs["queryset"] = accounts_visible_to(staff=_staff(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "role" and not _staff(request).is_superuser:
            kwargs["choices"] = [(r.value, r.label) for r in Role if r in CUSTOMER_ROLES]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    @admin.display(description=gettext_lazy("password"))
    def password_link(self, obj: User) -> str:
        url = reverse("admin:accounts_user_password", args=[obj.pk])
        return format_html(
            '<a class="button" href="{}">{}</a> <span class="help">{}</span>',
            url,
            _("Set a new password"),
            _("Passwords are stored as argon2id hashes; nobody can read them."),
        )

    def create(self, request: HttpRequest, data: dict[str, Any]) -> User:
        generated = None if data.get("password") else services.password_generate()
        user = services.user_create(
            email=data["email"],
            name=data.get("name", ""),
            role=Role(data["role"]),
            account=data.get("account"),
            password=data.get("password") or generated or "",
            must_change_password=True,
        )
        request._generated_password = generated  # type: ignore[attr-defined]
        return user

    def response_add(
        self, request: HttpRequest, obj: User, post_url_continue: Any = None
    ) -> HttpResponse:
        generated = getattr(request, "_generated_password", None)
        if generated:
            return _password_shown_once(request, obj, generated)
        return super().response_add(request, obj, post_url_continue)

    def get_urls(self) -> list[Any]:
        urls = [
            path(
                "<int:user_id>/password/",
                self.admin_site.admin_view(self.set_password_view),
                name="accounts_user_password",
            )
        ]
        return urls + super().get_urls()

    @sensitive
    @method_decorator(never_cache)
    def set_password_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        staff = _staff(request)
        target = self.get_queryset(request).filter(pk=user_id).first()
        if target is None:
            raise Http404
        if not self.has_change_permission(request, target):
            raise PermissionDenied
        form = SetPasswordByManagerForm(target, request.POST or None)
        if request.method == "POST" and form.is_valid():
            typed = form.cleaned_data.get("password")
            password = typed or services.password_generate()
            services.user_set_password(user=target, password=password, set_by=staff)
            if typed:
                messages.success(
                    request,
                    _("The password of %(email)s was set. They must change it at the next sign-in.")
                    % {"email": target.email},
                )
                return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[target.pk]))
            return _password_shown_once(request, target, password)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Set a new password for %(email)s") % {"email": target.email},
            "form": form,
            "target": target,
            "opts": self.opts,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/accounts/user/set_password.html", context)

    @sensitive
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        return super().add_view(request, form_url, extra_context)
