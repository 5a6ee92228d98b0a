"""Django admin for the members domain. Every list and lookup is scoped to the signed-in user's merchant."""

from __future__ import annotations

import functools

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.filters import RelatedFieldListFilter
from django.contrib.admin.options import IncorrectLookupParameters, InlineModelAdmin
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import SEARCH_VAR
from django.contrib.auth.password_validation import validate_password
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models import QuerySet
from django.forms.models import InlineForeignKeyField
from django.http import HttpRequest
from django.utils.text import capfirst, smart_split
from django.utils.translation import gettext_lazy as _

from core.errors import fail
from core.forms import YuanField
from core.money import yuan

from . import roles, scoping, selectors, services
from .models import AuditEvent, Building, Estate, Level, MemberCard, Merchant, Owner, Room, Staff, Store

# ---------------------------------------------------------------- scoping every admin
# One base class scopes everything a merchant's staff meets in the admin: the changelist and search,
# every list-filter sidebar, every foreign-key and many-to-many choice of forms and inlines, and the
# object behind every change/history/delete URL. The merchant of any model is derived by
# members.scoping from its foreign keys, so a model registered tomorrow is scoped too. Admins that
# are not scoped this way (third-party ones: users, groups, workflow processes) are platform-only
# (see restrict_unscoped_admins, run once every admin is registered).


def _is_platform(request: HttpRequest) -> bool:
    return selectors.is_platform_admin(request.user)


def _has_nul(request: HttpRequest) -> bool:
    return any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists())


# Bounds of a changelist query string: far above any real search or filter, far below what makes the
# database refuse the statement (SQLite: "LIKE or GLOB pattern too complex" past 50,000 bytes,
# "expression tree is too large" past ~1,000 search words).
MAX_QUERY_VALUE_LENGTH = 500
MAX_SEARCH_TERMS = 20


def _check_query_string(request: HttpRequest) -> None:
    """Refuse a changelist query the database cannot run as a bad lookup (the admin answers it with
    its "?e=1" page), never a 500: NUL characters, oversized values, too many search words."""
    if _has_nul(request):
        raise IncorrectLookupParameters("NUL character in the query string")
    if any(len(v) > MAX_QUERY_VALUE_LENGTH for _key, values in request.GET.lists() for v in values):
        raise IncorrectLookupParameters("query string value too long for a search or filter")
    if len(list(smart_split(request.GET.get(SEARCH_VAR, "")))) > MAX_SEARCH_TERMS:
        raise IncorrectLookupParameters("too many search words")


class ScopedRelatedFieldListFilter(RelatedFieldListFilter):
    """A related-field sidebar that lists only the related rows the user may see."""

    def field_choices(self, field, request, model_admin):
        queryset = scoping.scope_queryset(field.related_model._default_manager.all(), request.user)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            queryset = queryset.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in queryset]


def scoped_list_filter(model: type[models.Model], entries) -> list:
    """Every related-field filter of `entries` with its choices scoped (plain choice filters as they are)."""
    result = []
    for entry in entries:
        if isinstance(entry, str):
            field = get_fields_from_path(model, entry)[-1]
            if field.is_relation:
                entry = (entry, ScopedRelatedFieldListFilter)
        elif (
            isinstance(entry, tuple)
            and issubclass(entry[1], RelatedFieldListFilter)
            and not issubclass(entry[1], ScopedRelatedFieldListFilter)
        ):
            entry = (entry[0], ScopedRelatedFieldListFilter)
        result.append(entry)
    return result


class MerchantScopedForm(forms.ModelForm):
    """Checks a model form cannot leave to Django when the merchant is not one of its fields.

    - The merchant of a new row is the user's (set before validation, so constraints see it).
    - Every unique constraint with the merchant in it (store codes, level ranks, estate names…) is
      checked with the merchant and reported on its other field, instead of failing at the database.
    - Every related object chosen (foreign keys, many-to-many, the parent of an inline) belongs to
      the row's merchant: a plan of merchant A never gifts merchant B's coupon template, whoever edits it.
    """

    scope_merchant: Merchant | None = None  # set by the admin for users of one merchant

    def _merchant_field(self) -> str | None:
        return scoping.direct_merchant_field(self._meta.model)

    def _post_clean(self) -> None:
        field = self._merchant_field()
        if field and self.scope_merchant is not None and getattr(self.instance, f"{field}_id", None) is None:
            setattr(self.instance, field, self.scope_merchant)
        super()._post_clean()
        self._check_related_merchants()
        self._check_unique_per_merchant()

    def _check_related_merchants(self) -> None:
        merchant_id = scoping.merchant_id_of(self.instance)
        if merchant_id is None:
            return
        for name, formfield in self.fields.items():
            if name in self.errors or name not in self.cleaned_data:
                continue
            value = self.cleaned_data[name]
            if isinstance(formfield, forms.ModelMultipleChoiceField):
                chosen = list(value or [])
            elif isinstance(formfield, forms.ModelChoiceField | InlineForeignKeyField) and isinstance(
                value, models.Model
            ):
                chosen = [value]
            else:
                continue
            foreign = [obj for obj in chosen if scoping.merchant_id_of(obj) not in (None, merchant_id)]
            if foreign:
                # Named by its kind only: the row's name (or number, or id) is another merchant's data.
                self.add_error(
                    None,
                    fail(name, "other_merchant", _("The chosen %(model)s belongs to another merchant."),
                         model=foreign[0]._meta.verbose_name),
                )  # fmt: skip

    def _check_unique_per_merchant(self) -> None:
        field = self._merchant_field()
        if not field or field in self.fields:
            return  # with the merchant in the form, Django's own unique checks see it
        merchant_id = getattr(self.instance, f"{field}_id", None)
        if merchant_id is None:
            return
        opts = self._meta.model._meta
        groups = [tuple(c.fields) for c in opts.total_unique_constraints] + [tuple(u) for u in opts.unique_together]
        if opts.get_field(field).unique:
            groups.append((field,))
        for fields in groups:
            others = [f for f in fields if f != field]
            if len(others) == len(fields) or any(f not in self.fields or f in self.errors for f in others):
                continue
            lookup = {field: merchant_id}
            for name in others:
                lookup[opts.get_field(name).attname] = getattr(self.instance, opts.get_field(name).attname)
            if any(value is None for value in lookup.values()):
                continue
            taken = self._meta.model._default_manager.filter(**lookup)
            if self.instance.pk is not None:
                taken = taken.exclude(pk=self.instance.pk)
            if taken.exists():
                if others:
                    error = fail(others[0], "duplicate", _("%(label)s “%(value)s” is already used in this merchant."),
                                 label=opts.get_field(others[0]).verbose_name, value=lookup[opts.get_field(others[0]).attname])  # fmt: skip
                else:
                    error = fail("__all__", "duplicate", _("This merchant already has a %(model)s."),
                                 model=opts.verbose_name)  # fmt: skip
                self.add_error(None, error)


def _scoped_form(form: type[forms.ModelForm]) -> type[forms.ModelForm]:
    if issubclass(form, MerchantScopedForm):
        return form
    return type(f"Scoped{form.__name__}", (MerchantScopedForm, form), {})


def _integer_range(field: models.Field) -> tuple[int, int] | None:
    # The ranges PostgreSQL enforces (SQLite would store any 64-bit number): the same limits everywhere.
    return BaseDatabaseOperations.integer_field_ranges.get(field.get_internal_type())


class BoundedModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Refuses ids no database column can hold as invalid choices, before they reach the query. Its
    messages do not repeat the posted value (a database id, maybe of another merchant's row)."""

    default_error_messages = {
        "invalid_choice": _("Select valid choices: one of the chosen items is not available."),
        "invalid_pk_value": _("Select valid choices: one of the chosen values is not a valid item."),
    }

    def _check_values(self, value):
        key_field = self.queryset.model._meta.pk if self.to_field_name is None else None
        bounds = _integer_range(key_field) if key_field is not None else None
        if bounds:
            for pk in value:
                try:
                    number = int(str(pk).strip())
                except (TypeError, ValueError):
                    continue  # Django's own check reports it
                if not bounds[0] <= number <= bounds[1]:
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": pk}
                    )
        return super()._check_values(value)


# ---------------------------------------------------------------- money in yuan
# Money columns are integer fen named `*_fen` (house rule). Every admin shows them in yuan (list
# columns, read-only fields) and takes them in yuan (form fields that clean to fen).


def is_fen_field(field) -> bool:
    return isinstance(field, models.IntegerField) and field.name.endswith("_fen")


def yuan_attr(name: str) -> str:
    """The admin attribute that shows fen field `name` in yuan."""
    return f"{name}_yuan"


def yuan_column(field: models.Field):
    """A list/read-only column showing a fen field as ¥1,234.56, labelled and sorted as the field."""

    def column(obj) -> str:
        value = getattr(obj, field.attname)
        return "" if value is None else yuan(value)

    column.short_description = field.verbose_name
    column.admin_order_field = field.name
    return column


class YuanAdminMixin:
    """Fen fields in yuan in every admin and inline: YuanField in forms; `<field>_yuan` columns (set on
    the instance, one per fen field) in lists and wherever the field is shown read-only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.money_fields = {f.name: yuan_attr(f.name) for f in self.model._meta.concrete_fields if is_fen_field(f)}
        for field in self.model._meta.concrete_fields:
            if field.name in self.money_fields:
                setattr(self, yuan_attr(field.name), yuan_column(field))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if is_fen_field(db_field):
            # A minimum of 1 fen means "more than zero"; anything else is checked by the model's validators.
            positive = any(getattr(v, "limit_value", None) == 1 for v in db_field.validators)
            return YuanField(
                label=capfirst(db_field.verbose_name),
                help_text=db_field.help_text,
                required=not db_field.blank,
                initial=db_field.get_default() if db_field.has_default() else None,
                allow_zero=not positive,
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        readonly = [self.money_fields.get(name, name) for name in super().get_readonly_fields(request, obj)]
        if not self.has_change_permission(request, obj):
            # View-only: Django shows every field read-only; the money ones through their yuan column.
            readonly += [name for name in self.money_fields.values() if name not in readonly]
        return readonly

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.money_fields:
            return fields
        readonly = set(self.get_readonly_fields(request, obj))
        result = []
        for name in fields:
            if name in self.money_fields and self.money_fields[name] in readonly:
                name = self.money_fields[name]
            if name not in result:
                result.append(name)
        # A yuan column stands in for its fen field: never both.
        return [n for n in result if not (n in self.money_fields.values() and n.removesuffix("_yuan") in result)]

    def get_list_display(self, request):
        return [self.money_fields.get(n, n) if isinstance(n, str) else n for n in super().get_list_display(request)]


class ScopedFieldsMixin(YuanAdminMixin):
    """Foreign-key and many-to-many choices of forms and inlines: only rows the user may see; integer
    fields bounded by what the database column holds; money in yuan."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        bounds = _integer_range(db_field) if isinstance(db_field, models.IntegerField) else None
        if bounds and not db_field.primary_key:
            kwargs.setdefault("min_value", bounds[0])
            kwargs.setdefault("max_value", bounds[1])
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def _scope_related(self, db_field, request: HttpRequest, kwargs: dict) -> dict:
        queryset = kwargs.get("queryset")
        if queryset is None:
            queryset = self.get_field_queryset(None, db_field, request)
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.all()
        kwargs["queryset"] = scoping.scope_queryset(queryset, request.user)
        return kwargs

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **self._scope_related(db_field, request, kwargs))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("form_class", BoundedModelMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **self._scope_related(db_field, request, kwargs))


class ScopedInline(ScopedFieldsMixin, InlineModelAdmin):
    """Base of every inline: its rows and its choices are scoped, its forms checked like the parent's."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return scoping.scope_queryset(super().get_queryset(request), request.user)

    def get_formset(self, request, obj=None, **kwargs):
        kwargs["form"] = _scoped_form(kwargs.get("form", self.form))
        return super().get_formset(request, obj, **kwargs)


class ScopedTabularInline(ScopedInline, admin.TabularInline):
    pass


@functools.cache
def _scoped_inline(inline: type[InlineModelAdmin]) -> type[InlineModelAdmin]:
    """An inline written without ScopedInline is scoped all the same."""
    if issubclass(inline, ScopedInline):
        return inline
    return type(f"Scoped{inline.__name__}", (ScopedInline, inline), {})


MERCHANT_COLUMN = "merchant_of_row"


def merchant_column(lookup: str):
    def column(obj) -> str:
        for hop in lookup.split("__"):
            obj = getattr(obj, hop, None)
            if obj is None:
                return ""
        return str(obj)

    column.short_description = _("merchant")
    column.admin_order_field = lookup
    return column


class MerchantScopedAdmin(ScopedFieldsMixin, admin.ModelAdmin):
    """Shows only rows of the user's merchant (all rows to platform admins), in lists, filters, search,
    detail pages and every choice of its forms and inlines. Nothing is deleted through the admin:
    rows are deactivated or closed (and financial records are never deleted at all)."""

    form = MerchantScopedForm

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        lookup = self.merchant_lookup()
        if lookup and "__" in lookup:
            # A row whose merchant is a few relations away (a room's, a card's): a column of its own,
            # labelled "merchant" (Django would label the lookup with every model on the way).
            setattr(self, MERCHANT_COLUMN, merchant_column(lookup))

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return scoping.scope_queryset(super().get_queryset(request), request.user)

    def merchant_lookup(self) -> str | None:
        """The lookup from this admin's model to its merchant, for the platform admin's merchant column and
        filter (None for the merchants themselves and for rows of no merchant)."""
        path = scoping.merchant_path(self.model)
        return None if path in (None, scoping.GLOBAL, "pk") else path

    def get_list_display(self, request: HttpRequest):
        # The merchant column is the platform admin's: staff of one merchant see only their own rows.
        lookup = self.merchant_lookup()
        names = [n for n in super().get_list_display(request) if n not in (lookup, MERCHANT_COLUMN)]
        if not (lookup and _is_platform(request)):
            return names
        return [*names, MERCHANT_COLUMN if "__" in lookup else lookup]

    def get_list_select_related(self, request: HttpRequest):
        selected = super().get_list_select_related(request)
        lookup = self.merchant_lookup()
        if lookup and _is_platform(request) and isinstance(selected, list | tuple):
            # Named relations only (a bare select_related() would drop them): add the merchant's.
            return [*selected, lookup] if selected else selected
        return selected

    def get_list_filter(self, request: HttpRequest):
        lookup = self.merchant_lookup()
        entries = [e for e in super().get_list_filter(request) if (e[0] if isinstance(e, tuple) else e) != lookup]
        if lookup and _is_platform(request):
            entries.append(lookup)
        return scoped_list_filter(self.model, entries)

    def get_inlines(self, request, obj):
        return [_scoped_inline(inline) for inline in super().get_inlines(request, obj)]

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = _scoped_form(kwargs.get("form", self.form))
        form = super().get_form(request, obj, change=change, **kwargs)
        form.scope_merchant = None if _is_platform(request) else selectors.merchant_of(request.user)
        return form

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        field = scoping.direct_merchant_field(self.model)
        if field and not _is_platform(request):
            exclude.append(field)
        return exclude

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        field = scoping.direct_merchant_field(self.model)
        # A row never moves to another merchant; platform admins see the merchant, others do not need to.
        if obj is not None and field and _is_platform(request) and field not in readonly:
            readonly.append(field)
        return readonly

    def save_model(self, request, obj, form, change):
        field = scoping.direct_merchant_field(self.model)
        merchant = selectors.merchant_of(request.user)
        if field and merchant is not None and not change and not _is_platform(request):
            setattr(obj, field, merchant)
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        # Django offers (and runs) an action that declares no `allowed_permissions` to anyone who may
        # open the changelist, view-only roles included. Here an action changes something unless it
        # says otherwise: without a declaration it needs the change permission.
        actions = super().get_actions(request)
        if self.has_change_permission(request):
            return actions
        return {
            name: action
            for name, action in actions.items()
            if name == "delete_selected" or getattr(action[0], "allowed_permissions", None)
        }

    def get_changelist_instance(self, request):
        # NUL characters and out-of-range numbers in filters or search are bad lookups, not a 500.
        _check_query_string(request)
        try:
            return super().get_changelist_instance(request)
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(str(exc)) from exc


class PlatformOnlyAdminMixin:
    """For admins that know nothing of merchants: only platform admins may use them."""

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if _is_platform(request) else queryset.none()

    def has_module_permission(self, request):
        return _is_platform(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return _is_platform(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return _is_platform(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return _is_platform(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _is_platform(request) and super().has_delete_permission(request, obj)

    def get_changelist_instance(self, request):
        _check_query_string(request)
        return super().get_changelist_instance(request)


def restrict_unscoped_admins(site: admin.AdminSite) -> None:
    """Make every registered admin that is not a MerchantScopedAdmin platform-only. Run once all apps
    have registered their admins (MembersConfig.ready)."""
    for model, model_admin in list(site._registry.items()):
        if isinstance(model_admin, MerchantScopedAdmin | PlatformOnlyAdminMixin):
            continue
        cls = type(f"PlatformOnly{type(model_admin).__name__}", (PlatformOnlyAdminMixin, type(model_admin)), {})
        site._registry[model] = cls(model, site)


class ReadOnlyScopedAdmin(MerchantScopedAdmin):
    """Records that change only through services (ledger, business records): listed and shown here,
    never added, edited or deleted."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Merchant)
class MerchantAdmin(MerchantScopedAdmin):
    list_display = ("code", "name", "kind", "is_active", "created_at")
    list_filter = ("kind", "is_active")
    search_fields = ("code", "name")


@admin.register(Store)
class StoreAdmin(MerchantScopedAdmin):
    list_display = ("code", "name", "merchant", "is_active")
    list_filter = ("is_active", "merchant")
    search_fields = ("code", "name", "address")


class BuildingInline(ScopedTabularInline):
    model = Building
    extra = 0


@admin.register(Estate)
class EstateAdmin(MerchantScopedAdmin):
    list_display = ("name", "merchant", "address")
    list_filter = ("merchant",)
    search_fields = ("name", "address")
    inlines = [BuildingInline]


class RoomInline(ScopedTabularInline):
    model = Room
    extra = 0


@admin.register(Building)
class BuildingAdmin(MerchantScopedAdmin):
    list_display = ("name", "estate")
    list_filter = ("estate",)
    search_fields = ("name", "estate__name")
    inlines = [RoomInline]


@admin.register(Room)
class RoomAdmin(MerchantScopedAdmin):
    list_display = ("number", "building", "area_sqm")
    list_filter = ("building__estate", "building")
    search_fields = ("number", "building__name", "building__estate__name")


@admin.register(Level)
class LevelAdmin(MerchantScopedAdmin):
    list_display = ("name", "rank", "merchant", "discount_rate_bp", "points_multiplier_pct", "upgrade_spend_fen")
    list_filter = ("merchant",)
    search_fields = ("name",)


class MemberCardInline(ScopedTabularInline):
    model = MemberCard
    fk_name = "owner"
    extra = 0
    can_delete = False
    fields = ("card_number", "status", "issued_at", "closed_at", "replaced_by")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class OwnerAdminForm(MerchantScopedForm):
    """Owner fields the admin edits, checked by the service's own validation. The status is not here:
    a status change needs a reason and goes through members.services.set_owner_status (portal,
    workflows)."""

    class Meta:
        model = Owner
        fields = ["merchant", "name", "mobile", "birthday", "level", "rooms"]

    def clean(self):
        data = super().clean()
        merchant = self.scope_merchant or data.get("merchant") or getattr(self.instance, "merchant", None)
        if self.instance.pk and self.instance.level_id and "level" in self.fields and not data.get("level"):
            self.add_error(None, fail("level", "level_required", _("A member keeps a level: choose one.")))
        if merchant is not None:
            try:
                services.validate_owner_fields(
                    merchant,
                    mobile=data.get("mobile"),
                    rooms=data.get("rooms"),
                    level=data.get("level"),
                    exclude_owner=self.instance if self.instance.pk else None,
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    self.add_error(field if field in self.fields else None, errors)
        return data


@admin.register(Owner)
class OwnerAdmin(MerchantScopedAdmin):
    form = OwnerAdminForm
    list_display = ("member_number", "name", "mobile", "level", "status", "joined_at", "merchant")
    list_filter = ("status", "level", "merchant", "joined_at")
    search_fields = ("member_number", "name", "mobile")
    readonly_fields = ("member_number", "status", "joined_at", "registered_by")
    filter_horizontal = ("rooms",)
    inlines = [MemberCardInline]
    date_hierarchy = "joined_at"

    def has_delete_permission(self, request, obj=None):
        return False  # members are closed, never deleted

    def save_model(self, request, obj, form, change):
        # The form has already run the service's validation; the services write and audit.
        if change:
            return  # one update_owner call with the rooms too, in save_related
        data = form.cleaned_data
        merchant = selectors.merchant_of(request.user) if not _is_platform(request) else data.get("merchant")
        registered = services.register_owner(
            merchant=merchant, name=data["name"], mobile=data["mobile"], level=data.get("level"),
            birthday=data.get("birthday"), rooms=data.get("rooms") or [], actor=request.user,
        )  # fmt: skip
        obj.pk = registered.pk
        obj.member_number = registered.member_number

    def save_related(self, request, form, formsets, change):
        if change:
            data = form.cleaned_data
            services.update_owner(
                Owner.objects.get(pk=form.instance.pk), actor=request.user, reason="admin edit",
                name=data.get("name"), mobile=data.get("mobile"), level=data.get("level"),
                rooms=data.get("rooms") if "rooms" in data else None,
                **({"birthday": data["birthday"]} if "birthday" in data else {}),
            )  # fmt: skip
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(MemberCard)
class MemberCardAdmin(MerchantScopedAdmin):
    list_display = ("card_number", "owner", "status", "issued_at", "closed_at")
    list_filter = ("status",)
    search_fields = ("card_number", "owner__name", "owner__mobile", "owner__member_number")
    exclude = ("secret",)
    readonly_fields = ("card_number", "owner", "status", "issued_at", "closed_at", "replaced_by")
    actions = ["replace_lost_cards"]

    def has_add_permission(self, request):
        return False  # cards are issued on registration and replacement

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("Report lost and issue a replacement card"), permissions=["change"])
    def replace_lost_cards(self, request, queryset):
        for card in queryset:
            try:
                new = services.replace_card(card, actor=request.user, reason="lost (admin)")
                self.message_user(request, f"{card.card_number} → {new.card_number}")
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)


class StaffAddForm(MerchantScopedForm):
    """A new staff member always gets a new login: no existing (platform or other merchant's) login
    can be linked to a merchant through the admin."""

    username = forms.CharField(label=_("username"), max_length=150)
    password = forms.CharField(
        label=_("password"), widget=forms.PasswordInput, required=False,
        help_text=_("Leave empty to create the login without a usable password."),
    )  # fmt: skip
    actor = None  # the signed-in user, set by the admin

    class Meta:
        model = Staff
        fields = ["merchant", "username", "password", "name", "mobile", "role", "level", "stores"]

    def clean(self):
        data = super().clean()
        merchant = self.scope_merchant or data.get("merchant")
        if data.get("password"):
            try:
                validate_password(data["password"])
            except ValidationError as exc:
                self.add_error("password", exc)
        if merchant is not None:
            _service_errors(self, lambda: services.validate_staff_fields(
                merchant, actor=self.actor, role=data.get("role"), stores=data.get("stores"),
                mobile=data.get("mobile"), username=data.get("username"),
            ))  # fmt: skip
        return data


class StaffChangeForm(MerchantScopedForm):
    """Role, stores and active change through members.services (groups, object permissions, audit)."""

    actor = None

    class Meta:
        model = Staff
        fields = ["name", "mobile", "role", "level", "stores", "is_active"]

    def clean(self):
        data = super().clean()
        _service_errors(self, lambda: services.validate_staff_fields(
            self.instance.merchant, actor=self.actor, staff=Staff.objects.get(pk=self.instance.pk),
            role=data.get("role"), stores=data.get("stores"), mobile=data.get("mobile"),
        ))  # fmt: skip
        return data


def _service_errors(form: forms.Form, check) -> None:
    """Run a service check and show its errors on the form's fields."""
    try:
        check()
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)


@admin.register(Staff)
class StaffAdmin(MerchantScopedAdmin):
    list_display = ("name", "user", "merchant", "role", "level", "is_active")
    list_filter = ("role", "is_active", "merchant", "stores")
    search_fields = ("name", "mobile", "user__username")
    filter_horizontal = ("stores",)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = StaffChangeForm if obj is not None else StaffAddForm
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "user"] if obj is not None else readonly

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role" and not _is_platform(request):
            # Only a platform admin hands out the platform admin role.
            kwargs["choices"] = [c for c in db_field.get_choices() if c[0] != roles.PLATFORM_ADMIN]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.update_staff(
                obj, actor=request.user, reason="admin edit", name=data.get("name"), mobile=data.get("mobile"),
                level=data.get("level"), role=data.get("role"), stores=data.get("stores"),
                is_active=data.get("is_active"),
            )  # fmt: skip
            return
        merchant = data.get("merchant") if _is_platform(request) else selectors.merchant_of(request.user)
        staff = services.create_staff(
            merchant=merchant, username=data["username"], name=data["name"], role=data["role"],
            actor=request.user, stores=data.get("stores") or [], mobile=data.get("mobile") or "",
            password=data.get("password") or None, level=data.get("level") or 1,
        )  # fmt: skip
        obj.pk, obj.user, obj.merchant = staff.pk, staff.user, staff.merchant

    def save_related(self, request, form, formsets, change):
        # Stores were set by the services in save_model (never form.save_m2m: it would skip permissions).
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


class AuditActionFilter(admin.SimpleListFilter):
    """The recorded actions by name (the column holds codes)."""

    title = _("action")
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return list(AuditEvent.ACTION_LABELS.items())

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


class AuditObjectTypeFilter(admin.SimpleListFilter):
    """The kinds of object the user's audit events are about (not every content type of the project)."""

    title = _("object type")
    parameter_name = "object_type"

    def lookups(self, request, model_admin):
        ids = model_admin.get_queryset(request).order_by().values_list("content_type", flat=True).distinct()
        types = ContentType.objects.filter(pk__in=list(ids))
        return sorted(((str(t.pk), capfirst(t.model_class()._meta.verbose_name)) for t in types if t.model_class()),
                      key=lambda choice: str(choice[1]))  # fmt: skip

    def queryset(self, request, queryset):
        value = str(self.value() or "")  # facet counts pass the lookup value as it is
        if not value:
            return queryset
        if not value.isdigit() or len(value) > 18:
            raise IncorrectLookupParameters("not an object type")
        return queryset.filter(content_type_id=int(value))


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyScopedAdmin):
    list_display = ("at", "action_name", "actor_name", "object_type", "target_name", "merchant")
    list_filter = (AuditActionFilter, AuditObjectTypeFilter, "merchant")
    list_select_related = ("actor", "content_type", "merchant")
    search_fields = ("object_id", "reason", "actor__username")
    date_hierarchy = "at"
    exclude = ("action", "actor_label", "content_type")  # shown by name
    readonly_fields = ("action_name", "actor_name", "object_type")

    @admin.display(description=_("action"), ordering="action")
    def action_name(self, obj: AuditEvent) -> str:
        return obj.get_action_display()

    @admin.display(description=_("actor"))
    def actor_name(self, obj: AuditEvent) -> str:
        return obj.get_actor_display()

    @admin.display(description=_("object type"), ordering="content_type")
    def object_type(self, obj: AuditEvent) -> str:
        model = obj.content_type.model_class()
        return capfirst(model._meta.verbose_name) if model else obj.content_type.model

    @admin.display(description=_("object"))
    def target_name(self, obj: AuditEvent) -> str:
        return obj.object_id
