"""A merchant with two stores and the people of the approval workflows, for the flows tests."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType

from flows.models import ApprovalRequest, RequestTransition
from members import roles
from members.models import Staff, Store
from tests.factories import StoreFactory, UserFactory, make_staff
from tests.wallet_helpers import Shop, make_shop
from wallet import services as wallet


@dataclass
class Office:
    shop: Shop
    other_store: Store  # same merchant, another store
    operator: object
    operator2: object  # a second operator of the store (reviews member changes)
    manager: object  # approver of the store
    manager2: object  # a second approver of the store
    finance: object
    admin: object  # merchant admin
    other_manager: object  # approver of the other store only
    platform: object  # platform admin (no staff record)

    @property
    def merchant(self):
        return self.shop.merchant

    @property
    def store(self):
        return self.shop.store

    @property
    def member(self):
        return self.shop.member


def make_office(**settings) -> Office:
    shop = make_shop(**settings)
    other = StoreFactory(merchant=shop.merchant)
    store = shop.store

    def staff(role: str, stores) -> object:
        return make_staff(shop.merchant, role, stores=stores).user

    platform = UserFactory(is_staff=True)
    platform.groups.add(Group.objects.get(name=roles.PLATFORM_ADMIN))
    return Office(
        shop=shop, other_store=other, operator=staff(roles.OPERATOR, [store]), operator2=staff(roles.OPERATOR, [store]),
        manager=staff(roles.APPROVER, [store]), manager2=staff(roles.APPROVER, [store]),
        finance=staff(roles.FINANCE, [store]), admin=staff(roles.MERCHANT_ADMIN, [store, other]),
        other_manager=staff(roles.APPROVER, [other]), platform=platform,
    )  # fmt: skip


def consume_lines(office: Office, *amounts: int):
    """One consumption of the member paid directly (cash), one line per amount (fen). Returns its lines."""
    shop = office.shop
    items = []
    for i, fen in enumerate(amounts):
        service = wallet_service(shop, f"服务{fen}-{i}", fen)
        items.append(wallet.ConsumptionItem(service=service, direct_fen=fen, payment_method="cash"))
    consumption = wallet.consume(member=shop.member, store=shop.store, actor=None, items=items)
    return list(consumption.lines.order_by("line_no"))


def wallet_service(shop: Shop, name: str, fen: int):
    from wallet.models import Service

    return Service.objects.create(
        merchant=shop.merchant, category=shop.massage.category, name=name, list_price_fen=fen, member_price_fen=fen
    )


def history(request: ApprovalRequest) -> list[tuple[str, str, str]]:
    rows = RequestTransition.objects.filter(
        content_type=ContentType.objects.get_for_model(request), object_id=request.pk
    ).order_by("at", "pk")
    return [(row.name, row.source, row.target) for row in rows]


def fresh(request: ApprovalRequest) -> ApprovalRequest:
    """Re-read a request (its state field is protected: re-fetch rather than refresh_from_db)."""
    return type(request).objects.get(pk=request.pk)


def staff_of(user) -> Staff:
    return Staff.objects.get(user=user)
