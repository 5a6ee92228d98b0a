"""Demo members data for `make run` (called by the portal's load_demo_data command). Idempotent."""

from __future__ import annotations

import random

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from members import roles, services
from members.models import Building, Estate, Level, Merchant, Owner, Room, Store

DEMO_PASSWORD = "demo-pass-2026"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"


def load(stdout) -> tuple[Merchant, list[Store], list[tuple[str, str]]]:
    """Create (or find) the demo merchant, its stores, estate, levels, staff and 50 owners."""
    with transaction.atomic():
        merchant, created = Merchant.objects.get_or_create(
            code="demo", defaults={"name": "示例物业集团", "kind": Merchant.Kind.PROPERTY}
        )
        stores = [
            Store.objects.get_or_create(merchant=merchant, code=code, defaults={"name": name, "address": addr})[0]
            for code, name, addr in (
                ("north", "北门店", "幸福路1号"),
                ("south", "南门店", "和平路88号"),
            )
        ]
        estate, _ = Estate.objects.get_or_create(merchant=merchant, name="阳光花园", defaults={"address": "幸福路1号"})
        rooms = []
        for b in range(1, 4):
            building, _ = Building.objects.get_or_create(estate=estate, name=f"{b}栋")
            for floor in range(1, 6):
                for unit in (1, 2):
                    rooms.append(Room.objects.get_or_create(building=building, number=f"{floor}0{unit}")[0])
        for rank, (name, rate, mult, threshold) in enumerate(
            (("普通会员", 10000, 100, None), ("银卡会员", 9500, 120, 500_000), ("金卡会员", 9000, 150, 2_000_000))
        ):
            Level.objects.get_or_create(
                merchant=merchant,
                rank=rank,
                defaults={
                    "name": name,
                    "discount_rate_bp": rate,
                    "points_multiplier_pct": mult,
                    "upgrade_spend_fen": threshold,
                    "birthday_gift": "生日礼券" if rank else "",
                },
            )
        logins = _staff(merchant, stores)
        owners = _owners(merchant, rooms)
    stdout.write(
        f"Demo merchant '{merchant.name}' ({'created' if created else 'already there'}): "
        f"{len(stores)} stores, {len(rooms)} rooms, {owners} owners."
    )
    return merchant, stores, logins


def _staff(merchant: Merchant, stores: list[Store]) -> list[tuple[str, str]]:
    User = get_user_model()
    logins = []
    if not User.objects.filter(username="platform").exists():
        user = User.objects.create_user("platform", password=DEMO_PASSWORD, is_staff=True, first_name="平台管理员")
        user.groups.add(Group.objects.get(name=roles.PLATFORM_ADMIN))
    logins.append(("platform", roles.PLATFORM_ADMIN))
    people = {
        roles.MERCHANT_ADMIN: ("admin", "商户管理员", stores),
        roles.OPERATOR: ("operator", "操作员小李", stores),
        roles.APPROVER: ("manager", "北门店长", stores[:1]),
        roles.FINANCE: ("finance", "财务小王", stores),
        roles.CLERK: ("clerk", "营业员小张", stores[:1]),
    }
    for role, (username, name, role_stores) in people.items():
        if not User.objects.filter(username=username).exists():
            services.create_staff(
                merchant=merchant,
                username=username,
                name=name,
                role=role,
                stores=role_stores,
                password=DEMO_PASSWORD,
                actor=None,
            )
        logins.append((username, role))
    return logins


def _owners(merchant: Merchant, rooms: list[Room]) -> int:
    rng = random.Random(2026)  # the same owners every time
    for i in range(50):
        mobile = f"1391000{i:04d}"
        name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(("", *GIVEN))
        room = rooms[i % len(rooms)]
        if not Owner.objects.filter(merchant=merchant, mobile=mobile).exists():
            services.register_owner(merchant=merchant, name=name, mobile=mobile, rooms=[room], actor=None)
    return Owner.objects.filter(merchant=merchant).count()
