"""Give the back-office roles read access to the approval workflows (issue 12): the portal's task pages and
viewflow's own pages ask for "flows.view_<request>" / "flows.view_<process>"; which requests and tasks each
user then sees is decided per store (flows.selectors, flows.rules).

The role table is frozen here, as 0003 froze it: 0003's table (imported from that migration, which never
changes) extended with the flows' read permissions as they stand now. Existing databases get them when they
migrate; the post_migrate hook (members.apps) then syncs the groups with the live table in members.roles.
A database whose flows permissions do not exist yet (a fresh one) gets them from that hook.
"""

import importlib

from django.db import migrations

_narrowed = importlib.import_module("members.migrations.0003_narrow_role_permissions")

_FLOW_RECORDS = (
    "flows.refundrequest", "flows.memberchangerequest", "flows.staffonboarding", "flows.staffoffboarding",
    "flows.requesttransition", "flows.requestprocess", "flows.refundprocess", "flows.memberchangeprocess", "flows.staffonboardingprocess",
    "flows.staffoffboardingprocess",
)  # fmt: skip
_FLOW_SETTINGS = ("flows.flowsettings", "flows.taskdeadline")
_READ_FLOWS = _narrowed._perms(_FLOW_RECORDS, "view")

PATTERNS = {
    **_narrowed.PATTERNS,
    "merchant_admin": _narrowed.PATTERNS["merchant_admin"] + _READ_FLOWS + _narrowed._perms(_FLOW_SETTINGS, "view"),
    "operator": _narrowed.PATTERNS["operator"] + _READ_FLOWS,
    "approver": _narrowed.PATTERNS["approver"] + _READ_FLOWS,
    "finance": _narrowed.PATTERNS["finance"] + _READ_FLOWS,
}


def grant_flow_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = list(Permission.objects.select_related("content_type"))
    for role in _narrowed._ROLES:
        group, _ = Group.objects.get_or_create(name=role)
        wanted = [
            p
            for p in perms
            if any(_narrowed._matches(pat, p.content_type.app_label, p.codename) for pat in PATTERNS[role])
        ]
        group.permissions.set(wanted)


class Migration(migrations.Migration):
    dependencies = [
        ("members", "0005_verbose_names"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversing leaves the groups as they are: 0003's table is no smaller in what it takes away.
    operations = [migrations.RunPython(grant_flow_permissions, migrations.RunPython.noop)]
