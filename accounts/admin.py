"""The admin panel for customer accounts and users.

An account manager sees and changes only the accounts assigned to them and those
accounts' users; a main admin sees everything. Scoping lives in the selectors, so a
direct URL to another manager's account finds nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts import acting, consent, services
from accounts.admin_forms import UserAddForm, UserChangeForm
from accounts.consent_forms import AccessRequestForm
from accounts.forms import SetPasswordByManagerForm
from accounts.models import CUSTOMER_ROLES, AccessGrant, Account, ManagerAccess, Role, User
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
    list_display = ["name", "manager", "manager_access", "user_count", "staff_access", "created_at"]
    change_form_template = "admin/accounts/account/change_form.html"
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
        staff = _staff(request)
        # The end of this manager's current grant, for the "staff access" column.
        grant_until = AccessGrant.objects.filter(
            account=OuterRef("pk"),
            manager=staff,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).order_by("-expires_at")
        return accounts_visible_to(staff=staff).annotate(
            grant_until=Subquery(grant_until.values("expires_at")[:1]),
            viewer_is_admin=Value(staff.is_superuser),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = ["created_at"]
        if not _staff(request).is_superuser:
            # A manager cannot hand an account to someone else, nor, once the agreement
            # is made, give themselves standing access: that is the customer's to change
            # (the page "Access to your account").
            readonly.append("manager")
            if obj is not None:
                readonly.append("manager_access")
        return readonly

    def save_model(self, request: HttpRequest, obj: Account, form: Any, change: bool) -> None:
        if change and "manager_access" in form.changed_data:
            from accounts.consent import manager_access_set

            # Through the consent service, which records "consent.setting_changed".
            manager_access_set(
                account=obj, value=ManagerAccess(obj.manager_access), by=_staff(request)
            )
        super().save_model(request, obj, form, change)

    @admin.display(description=gettext_lazy("users"), ordering="user_count")
    def user_count(self, obj: Account) -> int:
        return obj.user_count  # type: ignore[attr-defined]

    @admin.display(description=gettext_lazy("your access"))
    def staff_access(self, obj: Account) -> str:
        work = reverse("admin:accounts_account_work_in", args=[obj.pk])
        until = getattr(obj, "grant_until", None)
        viewer_is_admin = getattr(obj, "viewer_is_admin", False)
        if obj.manager_access == ManagerAccess.ALLOWED or until is not None or viewer_is_admin:
            label = (
                _("Approved until %(until)s")
                % {"until": timezone.localtime(until).strftime("%H:%M")}
                if until is not None and obj.manager_access != ManagerAccess.ALLOWED
                else ""
            )
            return format_html('{} <a href="{}">{}</a>', label, work, _("Work in this account"))
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:accounts_account_request_access", args=[obj.pk]),
            _("Request access"),
        )

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        urls = [
            # Not named account_id on purpose: the audit middleware logs this page but
            # does not ask staff_access first, which would refuse the very manager who
            # needs to ask. The view checks the assignment itself and logs refusals.
            path(
                "<int:for_account>/request-access/",
                view(self.request_access_view),
                name="accounts_account_request_access",
            ),
            path(
                "<int:account_id>/work-in/",
                view(self.work_in_view),
                name="accounts_account_work_in",
            ),
        ]
        return urls + super().get_urls()

    def _consent_context(
        self, request: HttpRequest, account: Account, title: str
    ) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "account": account,
            "opts": self.opts,
            "has_view_permission": True,
        }

    def _refused(
        self, request: HttpRequest, account: Account, access: consent.Access
    ) -> HttpResponse:
        """403 with what to do next; logged. A manager not assigned to the account
        learns nothing about it, not even its name."""
        staff = _staff(request)
        consent.access_refused_record(user=staff, account=account, access=access, request=request)
        context = self._consent_context(request, account, _("No access to this account"))
        context.update(
            {
                "message": consent.refusal_message(access),
                "can_request": access.why in ("no_grant", "expired", "revoked"),
                "request_url": consent.request_access_url(account),
            }
        )
        return TemplateResponse(
            request, "admin/accounts/account/access_refused.html", context, status=403
        )

    @method_decorator(never_cache)
    def request_access_view(self, request: HttpRequest, for_account: int) -> HttpResponse:
        """An account manager asks the owners of an ASK account for access."""
        staff = _staff(request)
        account = Account.objects.select_related("manager").filter(pk=for_account).first()
        if account is None:
            raise Http404
        access = consent.staff_access(staff, account)
        if access.why in ("not_assigned", "not_staff"):
            return self._refused(request, account, access)
        form = AccessRequestForm(request.POST or None)
        asking = request.method == "POST" and access.why not in ("admin", "standing")
        if asking and form.is_valid():
            try:
                consent.access_request_create(
                    account=account,
                    manager=staff,
                    reason=form.cleaned_data["reason"],
                    request=request,
                )
            except consent.ConsentError as error:
                form.add_error(error.field, error.message)
            else:
                messages.success(
                    request,
                    _(
                        "Your request has been mailed to the owners of %(account)s. "
                        "You can work in the account as soon as one of them approves."
                    )
                    % {"account": account.name},
                )
                return HttpResponseRedirect(reverse("admin:accounts_account_changelist"))
        context = self._consent_context(
            request, account, _("Request access to %(account)s") % {"account": account.name}
        )
        context.update(
            {
                "form": form,
                "access": access,
                "pending": consent.access_request_pending(account=account, manager=staff),
            }
        )
        return TemplateResponse(request, "admin/accounts/account/request_access.html", context)

    @method_decorator(never_cache)
    @method_decorator(require_http_methods(["GET", "POST"]))
    def work_in_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        """Sign-in-as: work in the customer's dashboard on their behalf (GET asks,
        POST starts). Needs standing access or a grant; logged from start to end."""
        staff = _staff(request)
        account = Account.objects.select_related("manager").filter(pk=account_id).first()
        if account is None:
            raise Http404
        access = consent.staff_access(staff, account)
        if not access.allowed:
            return self._refused(request, account, access)
        if request.method == "POST":
            try:
                acting.acting_start(request=request, user=staff, account=account)
            except consent.ConsentError:  # access withdrawn in between
                return self._refused(request, account, consent.staff_access(staff, account))
            return redirect("accounts:home")
        context = self._consent_context(
            request,
            account,
            _("Work in %(account)s on the customer's behalf") % {"account": account.name},
        )
        started = timezone.now()
        context.update({"access": access, "ends_at": acting.ends_at(started, access.grant)})
        return TemplateResponse(request, "admin/accounts/account/work_in.html", context)

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
            created_by=_staff(request),
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
