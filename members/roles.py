"""Roles: Django groups with model permissions, plus object permissions on the stores a role is granted on."""

from __future__ import annotations

PLATFORM_ADMIN = "platform_admin"
MERCHANT_ADMIN = "merchant_admin"
OPERATOR = "operator"
APPROVER = "approver"
FINANCE = "finance"
CLERK = "clerk"

ROLES = (PLATFORM_ADMIN, MERCHANT_ADMIN, OPERATOR, APPROVER, FINANCE, CLERK)

# Object permissions (members.Store) a role grants on each store it is granted on.
STORE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    PLATFORM_ADMIN: (),  # superuser-like through its group; never scoped to a store
    MERCHANT_ADMIN: ("view_store", "operate_store", "approve_store", "finance_store", "redeem_store", "manage_store"),
    OPERATOR: ("view_store", "operate_store"),
    APPROVER: ("view_store", "approve_store"),
    FINANCE: ("view_store", "finance_store"),
    CLERK: ("view_store", "redeem_store"),
}

# Model permissions ("app_label.codename" patterns) each group holds. "*" means every action on the model.
_MEMBER_MODELS = ("owner", "membercard", "room", "building", "estate", "level")
GROUP_MODEL_PERMISSIONS: dict[str, tuple[str, ...]] = {
    PLATFORM_ADMIN: ("*",),
    MERCHANT_ADMIN: tuple(
        f"members.{a}_{m}" for m in (*_MEMBER_MODELS, "store", "staff") for a in ("view", "add", "change")
    )
    + ("wallet.*", "ledger.view_*"),
    OPERATOR: tuple(f"members.{a}_{m}" for m in _MEMBER_MODELS for a in ("view", "add", "change"))
    + ("members.view_store", "wallet.view_*", "wallet.add_*", "ledger.view_*"),
    APPROVER: tuple(f"members.view_{m}" for m in (*_MEMBER_MODELS, "store")) + ("wallet.view_*", "ledger.view_*"),
    FINANCE: tuple(f"members.view_{m}" for m in (*_MEMBER_MODELS, "store")) + ("wallet.view_*", "ledger.view_*"),
    CLERK: ("members.view_owner", "members.view_membercard"),
}

# Roles whose users may sign in to the Django admin (is_staff).
ADMIN_SITE_ROLES = (PLATFORM_ADMIN, MERCHANT_ADMIN, OPERATOR, APPROVER, FINANCE)
