"""Django admin for the members domain. Every list and lookup is scoped to the signed-in user's merchant."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from . import selectors, services
from .models import AuditEvent, Building, Estate, Level, MemberCard, Merchant, Owner, Room, Staff, Store

# Lookup from each model to its merchant, used for scoping querysets and foreign-key choices.
MERCHANT_PATHS: dict[type, str] = {
    Merchant: "pk",
    Store: "merchant",
    Estate: "merchant",
    Building: "estate__merchant",
    Room: "building__estate__merchant",
    Level: "merchant",
    Owner: "merchant",
    MemberCard: "owner__merchant",
    Staff: "merchant",
    AuditEvent: "merchant",
}


class MerchantScopedAdmin(admin.ModelAdmin):
    """Shows only rows of the user's merchant (all rows to platform admins), in lists, detail
    pages and foreign-key choices alike."""

    merchant_path: str = "merchant"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return selectors.scope_to_user(super().get_queryset(request), request.user, self.merchant_path)

    def _scope_related(self, request: HttpRequest, db_field, kwargs: dict) -> dict:
        model = db_field.remote_field.model
        if model in MERCHANT_PATHS and "queryset" not in kwargs:
            kwargs["queryset"] = selectors.scope_to_user(
                model._default_manager.all(), request.user, MERCHANT_PATHS[model]
            )
        return kwargs

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **self._scope_related(request, db_field, kwargs))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return super().formfield_for_manytomany(db_field, request, **self._scope_related(request, db_field, kwargs))

    def save_model(self, request, obj, form, change):
        # A staff user can only create rows for their own merchant.
        merchant = selectors.merchant_of(request.user)
        if merchant is not None and self.merchant_path == "merchant" and not change:
            obj.merchant = merchant
        super().save_model(request, obj, form, change)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if self.merchant_path == "merchant" and not selectors.is_platform_admin(request.user):
            exclude.append("merchant")
        return exclude


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
    merchant_path = "pk"
    list_display = ("code", "name", "kind", "is_active", "created_at")
    list_filter = ("kind", "is_active")
    search_fields = ("code", "name")


@admin.register(Store)
class StoreAdmin(MerchantScopedAdmin):
    list_display = ("code", "name", "merchant", "is_active")
    list_filter = ("is_active", "merchant")
    search_fields = ("code", "name", "address")


class BuildingInline(admin.TabularInline):
    model = Building
    extra = 0


@admin.register(Estate)
class EstateAdmin(MerchantScopedAdmin):
    list_display = ("name", "merchant", "address")
    list_filter = ("merchant",)
    search_fields = ("name", "address")
    inlines = [BuildingInline]


class RoomInline(admin.TabularInline):
    model = Room
    extra = 0


@admin.register(Building)
class BuildingAdmin(MerchantScopedAdmin):
    merchant_path = "estate__merchant"
    list_display = ("name", "estate")
    list_filter = ("estate",)
    search_fields = ("name", "estate__name")
    inlines = [RoomInline]


@admin.register(Room)
class RoomAdmin(MerchantScopedAdmin):
    merchant_path = "building__estate__merchant"
    list_display = ("number", "building", "area_sqm")
    list_filter = ("building__estate", "building")
    search_fields = ("number", "building__name", "building__estate__name")


@admin.register(Level)
class LevelAdmin(MerchantScopedAdmin):
    list_display = ("name", "rank", "merchant", "discount_rate_bp", "points_multiplier_pct", "upgrade_spend_fen")
    list_filter = ("merchant",)
    search_fields = ("name",)


class MemberCardInline(admin.TabularInline):
    model = MemberCard
    fk_name = "owner"
    extra = 0
    can_delete = False
    fields = ("card_number", "status", "issued_at", "closed_at", "replaced_by")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class OwnerAdminForm(forms.ModelForm):
    merchant_for_validation: Merchant | None = None

    class Meta:
        model = Owner
        fields = ["merchant", "name", "mobile", "birthday", "level", "status", "rooms"]

    def clean(self):
        data = super().clean()
        merchant = self.merchant_for_validation or data.get("merchant") or getattr(self.instance, "merchant", None)
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
    readonly_fields = ("member_number", "joined_at", "registered_by")
    filter_horizontal = ("rooms",)
    inlines = [MemberCardInline]
    date_hierarchy = "joined_at"

    def has_delete_permission(self, request, obj=None):
        return False  # members are closed, never deleted

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.merchant_for_validation = selectors.merchant_of(request.user)
        return form

    def save_model(self, request, obj, form, change):
        merchant = selectors.merchant_of(request.user) or form.cleaned_data.get("merchant") or obj.merchant
        # The form has already run the service's validation; the service writes and audits.
        if change:
            services.update_owner(
                obj,
                actor=request.user,
                reason="admin edit",
                name=form.cleaned_data["name"],
                mobile=form.cleaned_data["mobile"],
                level=form.cleaned_data.get("level"),
            )
        else:
            registered = services.register_owner(
                merchant=merchant,
                name=form.cleaned_data["name"],
                mobile=form.cleaned_data["mobile"],
                level=form.cleaned_data.get("level"),
                birthday=form.cleaned_data.get("birthday"),
                actor=request.user,
            )
            obj.pk = registered.pk
            obj.member_number = registered.member_number

    def save_related(self, request, form, formsets, change):
        owner = Owner.objects.get(pk=form.instance.pk)
        services.update_owner(owner, actor=request.user, reason="admin edit", rooms=form.cleaned_data.get("rooms", []))
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(MemberCard)
class MemberCardAdmin(MerchantScopedAdmin):
    merchant_path = "owner__merchant"
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

    @admin.action(description="Report lost and issue replacement (挂失补卡)")
    def replace_lost_cards(self, request, queryset):
        for card in queryset:
            try:
                new = services.replace_card(card, actor=request.user, reason="lost (admin)")
                self.message_user(request, f"{card.card_number} → {new.card_number}")
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)


@admin.register(Staff)
class StaffAdmin(MerchantScopedAdmin):
    list_display = ("name", "user", "merchant", "role", "level", "is_active")
    list_filter = ("role", "is_active", "merchant", "stores")
    search_fields = ("name", "mobile", "user__username")
    filter_horizontal = ("stores",)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyScopedAdmin):
    list_display = ("at", "action", "actor", "actor_label", "content_type", "object_id", "merchant")
    list_filter = ("action", "content_type", "merchant")
    search_fields = ("object_id", "reason", "actor__username")
    date_hierarchy = "at"
