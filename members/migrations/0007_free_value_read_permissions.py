"""Give the back-office roles read access to the free value requests (issue 12, "free value beyond the limit"):
the portal's task and request pages ask for "flows.view_freevaluerequest" / "flows.view_freevalueprocess";
which requests and tasks each user sees is decided per store (flows.selectors, flows.rules).

0006's frozen table extended with the two new models, frozen here in turn (the post_migrate hook then syncs
the groups with the live table in members.roles; a fresh database gets them from that hook).
"""

import importlib

from django.db import migrations

_narrowed = importlib.import_module("members.migrations.0003_narrow_role_permissions")
_previous = importlib.import_module("members.migrations.0006_flow_read_permissions")

_READ_FREE_VALUE = _narrowed._perms(("flows.freevaluerequest", "flows.freevalueprocess"), "view")

PATTERNS = {
    **_previous.PATTERNS,
    **{
        role: _previous.PATTERNS[role] + _READ_FREE_VALUE
        for role in ("merchant_admin", "operator", "approver", "finance")
    },
}


def grant_free_value_permissions(apps, schema_editor):
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
        ("members", "0006_flow_read_permissions"),
    ]

    # Reversing leaves the groups as they are, as 0006 does.
    operations = [migrations.RunPython(grant_free_value_permissions, migrations.RunPython.noop)]
