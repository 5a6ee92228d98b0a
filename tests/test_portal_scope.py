"""Store scope of actions (issue 9, item 10) and forged ids in portal POST data.

A member is merchant-wide, so staff of the merchant read every member; acting on a record made at a
store needs that store's permission. Every case posts through the real portal URLs and checks that
a refused request shows a field error and posts nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from django.urls import reverse

from flows.models import RefundRequest
from ledger.models import Entry
from members import permissions, roles
from members.models import Store
from tests.factories import StoreFactory, make_owner, make_staff
from tests.portal_helpers import post_confirmed
from tests.wallet_helpers import Shop, load_plan, make_shop
from wallet import permissions as wallet_permissions
from wallet import selectors, services
from wallet.models import Consumption, ConsumptionLine, EntitlementRefund, Grant, Recharge, ServiceRecord, Voucher

pytestmark = pytest.mark.django_db


@dataclass
class Scene:
    """Merchant A with stores 1 and 2, a member with consumptions rung up at store 1, at store 2 and at
    no store, an operator of each store; merchant B with its own of everything."""

    a: Shop
    store1: Store
    store2: Store
    op1: object
    op2: object
    admin: object
    line1: ConsumptionLine
    line2: ConsumptionLine
    line_nowhere: ConsumptionLine
    other_member_line: ConsumptionLine
    b: Shop
    b_line: ConsumptionLine
    b_grant: Grant
    b_voucher: Voucher
    other_member_grant: Grant
    other_member_voucher: Voucher


def _consume(shop: Shop, store, member=None) -> ConsumptionLine:
    member = member or shop.member
    consumption = services.consume(member=member, store=store, actor=None,
                                   items=[services.ConsumptionItem(service=shop.car_wash, stored_value_fen=3_000)])  # fmt: skip
    return consumption.lines.get()


def _buy(shop: Shop, member, kind: str, **item):
    services.recharge(member=member, store=shop.store, payment_method="cash", actor=None,
                      items=[services.RechargeItem(kind=kind, **item)])  # fmt: skip


@pytest.fixture
def scene() -> Scene:
    a = make_shop()
    store1, store2 = a.store, StoreFactory(merchant=a.merchant)
    load_plan(a)
    other_member = make_owner(a.merchant)
    load_plan(a, member=other_member)
    _buy(a, other_member, "coupon", coupon_template=a.car_wash_coupon)
    _buy(a, other_member, "voucher", voucher_template=a.voucher)
    b = make_shop()
    load_plan(b)
    _buy(b, b.member, "coupon", coupon_template=b.car_wash_coupon)
    _buy(b, b.member, "voucher", voucher_template=b.voucher)
    return Scene(
        a=a, store1=store1, store2=store2,
        op1=make_staff(a.merchant, roles.OPERATOR, stores=[store1]).user,
        op2=make_staff(a.merchant, roles.OPERATOR, stores=[store2]).user,
        admin=make_staff(a.merchant, roles.MERCHANT_ADMIN, stores=[store1, store2]).user,
        line1=_consume(a, store1), line2=_consume(a, store2), line_nowhere=_consume(a, None),
        other_member_line=_consume(a, store2, other_member),
        b=b, b_line=_consume(b, b.store), b_grant=Grant.objects.get(member=b.member),
        b_voucher=Voucher.objects.get(member=b.member),
        other_member_grant=Grant.objects.get(member=other_member),
        other_member_voucher=Voucher.objects.get(member=other_member),
    )  # fmt: skip


def _counts() -> tuple:
    return (Entry.objects.count(), Recharge.objects.count(), Consumption.objects.count(),
            ServiceRecord.objects.count(), EntitlementRefund.objects.count(),
            ConsumptionLine.objects.filter(status=ConsumptionLine.Status.REFUNDED).count())  # fmt: skip


def _refund(client, s: Scene, lines, store=None, member=None):
    data = {"refund-token": str(uuid.uuid4()), "refund-kind": "lines", "refund-store": (store or s.store2).pk,
            "refund-lines": [line.pk for line in lines], "refund-reason": "顾客投诉"}  # fmt: skip
    return post_confirmed(client, reverse("members:refund", kwargs={"pk": (member or s.a.member).pk}), data)


# ---------------------------------------------------------------- refunds across stores

REFUND_CASES = [
    # (case, user, lines, allowed)
    ("own store's line", "op2", ["line2"], True),
    ("another store's line", "op2", ["line1"], False),
    ("own and another store's lines together", "op2", ["line2", "line1"], False),
    ("a line made at no store", "op2", ["line_nowhere"], False),
    ("another member's line", "op2", ["other_member_line"], False),
    ("another merchant's line", "op2", ["b_line"], False),
    ("store 1's operator refunds store 1's line", "op1", ["line1"], True),
    ("merchant admin: a line made at no store", "admin", ["line_nowhere"], True),
    ("merchant admin: lines of both stores", "admin", ["line1", "line2"], True),
]


@pytest.mark.parametrize("case,who,line_names,allowed", REFUND_CASES, ids=[c[0] for c in REFUND_CASES])
def test_refund_needs_the_permission_of_the_store_each_line_was_rung_up_at(
    client, scene, case, who, line_names, allowed
):
    user = getattr(scene, who)
    lines = [getattr(scene, name) for name in line_names]
    client.force_login(user)
    page = client.get(reverse("members:refund", kwargs={"pk": scene.a.member.pk}), {"kind": "lines"}).content.decode()
    offered = {line.pk for line in lines if f'name="refund-lines" value="{line.pk}"' in page}
    before = _counts()
    store = scene.store1 if who == "op1" else scene.store2
    response = _refund(client, scene, lines, store=store)
    if allowed:
        assert offered == {line.pk for line in lines}
        assert response.status_code == 302, response.context["refund_form"].errors
        # A refund request for exactly these lines (issue 12): nothing is refunded before the approvals.
        request = RefundRequest.objects.get()
        assert set(request.lines.values_list("pk", flat=True)) == {line.pk for line in lines}
        assert _counts() == before
    else:
        assert offered != {line.pk for line in lines}  # not all of them were even offered
        assert response.status_code == 200
        form = response.context["refund_form"]
        # Django's stock message would repeat the posted (database) id; ours names no id.
        assert [e.code for e in form.errors.as_data()["lines"]] in (["invalid_choice"], ["line_store_forbidden"])
        stock = form.fields["lines"].error_messages["invalid_choice"]
        assert all(e.message == stock or e.code == "line_store_forbidden" for e in form.errors.as_data()["lines"])
        assert _counts() == before, "a refused refund posted something"
        assert "errorlist" in response.content.decode()


def test_the_posted_lines_are_checked_again_by_the_one_rule(scene):
    """The form's choices already leave other stores' lines out; the check on what is posted stands on
    its own (members.permissions via wallet.permissions), so widening the choices cannot let one through."""
    from django.contrib.auth import get_user_model

    from core.errors import DomainError
    from portal.forms import RefundForm

    op2 = get_user_model().objects.get(pk=scene.op2.pk)
    form = RefundForm(
        {"refund-token": str(uuid.uuid4()), "refund-store": scene.store2.pk, "refund-lines": [scene.line1.pk],
         "refund-reason": "x"},
        member=scene.a.member, stores=Store.objects.filter(pk=scene.store2.pk), user=op2,
    )  # fmt: skip
    form.fields["lines"].queryset = selectors.refundable_lines(scene.a.member)  # every store's lines
    assert not form.is_valid() and "lines" in form.errors
    assert scene.store1.name in form.errors["lines"][0]

    with pytest.raises(DomainError) as exc:
        wallet_permissions.check_lines_actionable(op2, [scene.line1], member=scene.a.member)
    assert exc.value.code == "line_store_forbidden"
    with pytest.raises(DomainError) as exc:
        wallet_permissions.check_lines_actionable(op2, [scene.b_line], member=scene.a.member)
    assert exc.value.code == "line_not_members"
    wallet_permissions.check_lines_actionable(op2, [scene.line2], member=scene.a.member)


def test_can_act_on_store_table(scene):
    from django.contrib.auth import get_user_model

    fresh = {name: get_user_model().objects.get(pk=getattr(scene, name).pk) for name in ("op1", "op2", "admin")}
    a, b = scene.a.merchant, scene.b.merchant
    table = [
        ("op1", scene.store1, a, True),
        ("op1", scene.store2, a, False),
        ("op1", None, a, False),
        ("op2", scene.store2, a, True),
        ("admin", scene.store1, a, True),
        ("admin", None, a, True),
        ("admin", scene.b.store, b, False),  # another merchant's store: never
        ("admin", None, b, False),
    ]
    for who, store, merchant, expected in table:
        assert permissions.can_act_on_store(fresh[who], store, merchant=merchant) is expected, (who, store, merchant)
    # A store-scoped role other than operate does not stand in for it.
    approver = make_staff(a, roles.APPROVER, stores=[scene.store1]).user
    assert not permissions.can_act_on_store(approver, scene.store1, merchant=a)
    assert permissions.can_act_on_store(approver, scene.store1, "members.approve_store", merchant=a)


# ---------------------------------------------------------------- forged ids in every operator form


def _recharge_data(s: Scene, **fields):
    data = {"recharge-token": str(uuid.uuid4()), "recharge-store": s.store1.pk, "recharge-payment_method": "cash",
            "recharge-kind": "stored_value", "recharge-amount": "10", "recharge-bonus": "", "recharge-quantity": "1",
            "recharge-note": ""}  # fmt: skip
    data.update({f"recharge-{k}": v for k, v in fields.items()})
    return data


def _consume_data(s: Scene, **fields):
    data = {"consume-token": str(uuid.uuid4()), "consume-store": s.store1.pk, "consume-service": s.a.car_wash.pk,
            "consume-quantity": "1", "consume-staff": s.a.staff.pk, "consume-funding": "stored_value",
            "consume-notes": "", "consume-tags": ""}  # fmt: skip
    data.update({f"consume-{k}": v for k, v in fields.items()})
    return data


def _inactive_store_of_op1(s: Scene) -> Store:
    from members import services as member_services

    store = StoreFactory(merchant=s.a.merchant)
    member_services.grant_store_role(s.op1.staff, store, roles.OPERATOR, actor=None)
    Store.objects.filter(pk=store.pk).update(is_active=False)
    return store


FORGED = [
    # (case, url name, form context name, field with the error, data builder)
    ("recharge at a store without operate_store", "recharge", "recharge_form", "store",
     lambda s: _recharge_data(s, store=s.store2.pk)),
    ("recharge at another merchant's store", "recharge", "recharge_form", "store",
     lambda s: _recharge_data(s, store=s.b.store.pk)),
    ("recharge at an inactive store", "recharge", "recharge_form", "store",
     lambda s: _recharge_data(s, store=_inactive_store_of_op1(s).pk)),
    ("recharge with another merchant's plan", "recharge", "recharge_form", "plan",
     lambda s: _recharge_data(s, kind="plan", plan=s.b.plan.pk)),
    ("recharge with another merchant's coupon template", "recharge", "recharge_form", "coupon_template",
     lambda s: _recharge_data(s, kind="coupon", coupon_template=s.b.car_wash_coupon.pk)),
    ("recharge with another merchant's package", "recharge", "recharge_form", "package",
     lambda s: _recharge_data(s, kind="package", package=s.b.cleaning_package.pk)),
    ("consume at a store without operate_store", "consume", "consumption_form", "store",
     lambda s: _consume_data(s, store=s.store2.pk)),
    ("consume at another merchant's store", "consume", "consumption_form", "store",
     lambda s: _consume_data(s, store=s.b.store.pk)),
    ("consume another merchant's service", "consume", "consumption_form", "service",
     lambda s: _consume_data(s, service=s.b.car_wash.pk)),
    ("consume served by another merchant's staff", "consume", "consumption_form", "staff",
     lambda s: _consume_data(s, staff=s.b.staff.pk)),
    ("consume with another merchant's grant", "consume", "consumption_form", "grant",
     lambda s: _consume_data(s, funding="grant", grant=s.b_grant.pk)),
    ("consume with another member's grant", "consume", "consumption_form", "grant",
     lambda s: _consume_data(s, funding="grant", grant=s.other_member_grant.pk)),
    ("consume with another merchant's voucher", "consume", "consumption_form", "voucher",
     lambda s: _consume_data(s, funding="voucher", voucher=s.b_voucher.pk)),
    ("consume with another member's voucher", "consume", "consumption_form", "voucher",
     lambda s: _consume_data(s, funding="voucher", voucher=s.other_member_voucher.pk)),
    ("refund recorded at a store without operate_store", "refund", "refund_form", "store",
     lambda s: {"refund-token": str(uuid.uuid4()), "refund-store": s.store2.pk, "refund-lines": [s.line1.pk],
                "refund-reason": "x"}),
]  # fmt: skip


@pytest.mark.parametrize("case,url_name,form_name,field,build", FORGED, ids=[c[0] for c in FORGED])
def test_forged_ids_in_operator_forms_are_field_errors_and_post_nothing(
    client, scene, case, url_name, form_name, field, build
):
    client.force_login(scene.op1)
    data = build(scene)
    before = _counts()
    response = post_confirmed(client, reverse(f"members:{url_name}", kwargs={"pk": scene.a.member.pk}), data)
    assert response.status_code == 200
    assert field in response.context[form_name].errors, response.context[form_name].errors
    assert _counts() == before


@pytest.mark.parametrize("url_name", ["member", "recharge", "consume", "refund"])
def test_another_merchants_member_is_404_on_every_portal_url(client, scene, url_name):
    client.force_login(scene.admin)
    before = _counts()
    url = reverse(f"members:{url_name}", kwargs={"pk": scene.b.member.pk})
    assert client.get(url).status_code == 404
    if url_name != "member":  # the member page only answers GET
        assert client.post(url, _recharge_data(scene) | _consume_data(scene)).status_code == 404
    assert _counts() == before
