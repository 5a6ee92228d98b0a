"""Roles: Django groups with model permissions, plus object permissions on the stores a role is granted on.

Who may do what (docs: issue 9 item 1): prices, plans, templates, level benefits and wallet settings
belong to the merchant admin (and the platform admin). Operators record operations: they register and
maintain members and read the rest; the operations themselves are authorised per store by the
`operate_store` object permission, not by model permissions. Approvers and finance read; clerks see
members only. Every model of the members, wallet and ledger apps is listed in exactly one of the
tables below (a test checks it), so a new model gets a deliberate decision instead of a wildcard.
"""

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

# Pricing and marketing ("app_label.model"): only the merchant admin adds, changes or deletes them.
PRICING_MODELS = (
    "members.level",  # discount rate, points multiplier, upgrade thresholds
    "wallet.walletsettings",
    "wallet.activitypointsrule",
    "wallet.servicecategory",
    "wallet.service",
    "wallet.commissionrule",
    "wallet.vouchertemplate",
    "wallet.coupontemplate",
    "wallet.entitlementpackage",
    "wallet.packageitem",
    "wallet.vipcardtype",
    "wallet.rechargeplan",
)
# The merchant's organisation: stores, staff and the property tree (estates → buildings → rooms).
ORGANISATION_MODELS = ("members.store", "members.staff", "members.estate", "members.building", "members.room")
# Members and their cards: operators register and maintain them.
MEMBER_MODELS = ("members.owner", "members.membercard")
# Records written only by the services (business records, benefits held, ledger, audit): read-only
# for everyone; nobody adds or changes them through model permissions.
RECORD_MODELS = (
    "members.auditevent",
    "members.dailysequence",
    "wallet.storedvaluecard",
    "wallet.voucher",
    "wallet.grant",
    "wallet.vipmembership",
    "wallet.recharge",
    "wallet.rechargeline",
    "wallet.servicetag",
    "wallet.servicerecord",
    "wallet.consumption",
    "wallet.consumptionline",
    "wallet.entitlementrefund",
    "wallet.cashrefund",
)
# Ledger models are all records: "ledger.view_*" below.
# Approval requests, their processes and history (flows): written only by flows.services. Back-office roles
# read them (the portal's task pages, and viewflow's own pages, which ask for "flows.view_<process>"); which
# requests and tasks each user sees is decided per store on top of that (flows.selectors, flows.rules).
FLOW_RECORD_MODELS = (
    "flows.refundrequest",
    "flows.memberchangerequest",
    "flows.staffonboarding",
    "flows.staffoffboarding",
    "flows.requesttransition",
    "flows.requestprocess",
    "flows.refundprocess",
    "flows.memberchangeprocess",
    "flows.staffonboardingprocess",
    "flows.staffoffboardingprocess",
    "flows.freevaluerequest",
    "flows.freevalueprocess",
)
# Workflow settings (finance threshold, deadlines): changed through flows.services by the merchant admin only;
# bookkeeping of the flows (reminders sent, per-user notifications): nobody's through model permissions.
FLOW_SETTINGS_MODELS = ("flows.flowsettings", "flows.taskdeadline")
FLOW_INTERNAL_MODELS = ("flows.taskreminder", "flows.notification")


def _perms(models: tuple[str, ...], *actions: str) -> tuple[str, ...]:
    return tuple(f"{m.split('.')[0]}.{a}_{m.split('.')[1]}" for m in models for a in actions)


_READ_ALL = ("wallet.view_*", "ledger.view_*")
_READ_FLOWS = _perms(FLOW_RECORD_MODELS, "view")
# What every back-office role reads besides members: the organisation (but not staff) and the levels.
_READ_CONTEXT = _perms(("members.store", "members.estate", "members.building", "members.room", "members.level"), "view")

# Model permissions ("app_label.codename" patterns) each group holds. "*" means every permission.
GROUP_MODEL_PERMISSIONS: dict[str, tuple[str, ...]] = {
    PLATFORM_ADMIN: ("*",),
    MERCHANT_ADMIN: _perms(MEMBER_MODELS + ORGANISATION_MODELS, "view", "add", "change")
    + _perms(PRICING_MODELS, "view", "add", "change", "delete")
    + _READ_ALL
    + _READ_FLOWS
    + _perms(FLOW_SETTINGS_MODELS, "view"),
    OPERATOR: _perms(MEMBER_MODELS, "view", "add", "change") + _READ_CONTEXT + _READ_ALL + _READ_FLOWS,
    APPROVER: _perms(MEMBER_MODELS, "view") + _READ_CONTEXT + _READ_ALL + _READ_FLOWS,
    FINANCE: _perms(MEMBER_MODELS, "view") + _READ_CONTEXT + _READ_ALL + _READ_FLOWS,
    CLERK: _perms(MEMBER_MODELS, "view"),
}

# Roles whose users may sign in to the Django admin (is_staff).
ADMIN_SITE_ROLES = (PLATFORM_ADMIN, MERCHANT_ADMIN, OPERATOR, APPROVER, FINANCE)
