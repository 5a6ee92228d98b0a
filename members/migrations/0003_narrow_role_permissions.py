"""Narrow the role groups' model permissions (issue 9, item 1): pricing and marketing belong to the
merchant admin; operators no longer add plans, templates, services or packages nor change levels.

The role table is frozen here as it stood when this migration was written: a migration must not
import code that keeps changing. Existing databases get the narrowed groups when they migrate; the
post_migrate hook (members.apps) then syncs the groups with the live table in members.roles, which
also covers fresh databases, whose permission rows only exist after the first migrate.
"""

from django.db import migrations

_ROLES = ("platform_admin", "merchant_admin", "operator", "approver", "finance", "clerk")
_PRICING = (
    "members.level", "wallet.walletsettings", "wallet.activitypointsrule", "wallet.servicecategory",
    "wallet.service", "wallet.commissionrule", "wallet.vouchertemplate", "wallet.coupontemplate",
    "wallet.entitlementpackage", "wallet.packageitem", "wallet.vipcardtype", "wallet.rechargeplan",
)  # fmt: skip
_ORGANISATION = ("members.store", "members.staff", "members.estate", "members.building", "members.room")
_MEMBERS = ("members.owner", "members.membercard")
_CONTEXT = ("members.store", "members.estate", "members.building", "members.room", "members.level")
_READ_ALL = ("wallet.view_*", "ledger.view_*")


def _perms(models, *actions):
    return tuple(f"{m.split('.')[0]}.{a}_{m.split('.')[1]}" for m in models for a in actions)


PATTERNS = {
    "platform_admin": ("*",),
    "merchant_admin": _perms(_MEMBERS + _ORGANISATION, "view", "add", "change")
    + _perms(_PRICING, "view", "add", "change", "delete")
    + _READ_ALL,
    "operator": _perms(_MEMBERS, "view", "add", "change") + _perms(_CONTEXT, "view") + _READ_ALL,
    "approver": _perms(_MEMBERS, "view") + _perms(_CONTEXT, "view") + _READ_ALL,
    "finance": _perms(_MEMBERS, "view") + _perms(_CONTEXT, "view") + _READ_ALL,
    "clerk": _perms(_MEMBERS, "view"),
}


def _matches(pattern: str, app: str, codename: str) -> bool:
    if pattern == "*":
        return True
    p_app, p_code = pattern.split(".", 1)
    if p_app != app:
        return False
    return p_code == "*" or p_code == codename or (p_code.endswith("*") and codename.startswith(p_code[:-1]))


def narrow_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = list(Permission.objects.select_related("content_type"))
    for role in _ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        wanted = [
            p for p in perms if any(_matches(pat, p.content_type.app_label, p.codename) for pat in PATTERNS[role])
        ]
        group.permissions.set(wanted)


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0002_role_groups"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversing would hand operators the pricing permissions again: keep the narrowed groups.
    operations = [migrations.RunPython(narrow_groups, migrations.RunPython.noop)]
