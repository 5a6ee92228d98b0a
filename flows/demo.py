"""Demo approval requests for `make run` (called by the portal's load_demo_data command after the wallet's
demo data): work waiting in each queue, so a newcomer logging in as `manager`, `finance` or `operator` sees
tasks. Idempotent: it does nothing once the demo merchant has refund requests.

- manager (store manager of 北门店): a refund of consumption lines under the finance threshold, a cash
  refund of stored value above it, a cash refund of an entitlement lot, a staff onboarding;
- finance: a cash refund of stored value above the threshold that the manager has approved already;
- operator: a member change proposed by the merchant admin; and a notification of a rejected request;
- admin (merchant admin): a recharge whose manual bonus is over the merchant's limit, submitted for approval.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from members.models import Merchant, Owner, Store
from wallet import services as wallet
from wallet.models import Consumption, ConsumptionLine, Grant

from . import services
from .models import RefundRequest


def load(merchant: Merchant, stores: list[Store], stdout) -> None:
    if RefundRequest.objects.filter(merchant=merchant).exists():
        stdout.write("Demo approval requests already there.")
        return
    User = get_user_model()
    people = {u.username: u for u in User.objects.filter(username__in=["admin", "operator", "manager", "finance"])}
    if len(people) < 4:
        stdout.write("Demo approval requests skipped: the demo logins are missing.")
        return
    admin, operator, manager = people["admin"], people["operator"], people["manager"]
    north = stores[0]  # the manager's store
    owners = list(Owner.objects.filter(merchant=merchant).order_by("pk"))
    made: list[str] = []

    # A refund of consumption lines under the threshold: a member's massage at 北门店.
    line = (
        ConsumptionLine.objects.filter(consumption__member__in=owners[:24], consumption__store=north,
                                       status=ConsumptionLine.Status.NORMAL, principal_fen__gt=0)
        .select_related("consumption__member")
        .order_by("pk")
        .first()
    )  # fmt: skip
    if line is not None:
        request = services.start_refund_request(member=line.consumption.member, store=north, kind="lines",
                                                actor=operator, reason="服务不满意，顾客要求退款", lines=[line])  # fmt: skip
        made.append(request.number)

    # Cash refunds of stored value above the finance threshold (¥1,000.00): members without other history.
    for owner, fen, reason in ((owners[25], 200_000, "业主搬离，退还储值"), (owners[26], 150_000, "家人代办退卡")):
        wallet.recharge(member=owner, store=north, payment_method="wechat", actor=operator,
                        items=[wallet.RechargeItem(kind="stored_value", amount_fen=fen)])  # fmt: skip
        request = services.start_refund_request(member=owner, store=north, kind="stored_value", actor=operator,
                                                reason=reason, payment_method="wechat")  # fmt: skip
        made.append(request.number)
    services.approve(request, actor=manager, reason="已核实")  # the second now waits for finance

    # A cash refund of the unused uses of an entitlement package, of another member than the line refund's: the
    # finance tier counts a member's refunds of the last 24 hours together (flows.rules).
    grant = Grant.objects.filter(member__in=owners[:24], kind=Grant.Kind.ENTITLEMENT, status=Grant.Status.ACTIVE)
    if line is not None:
        grant = grant.exclude(member=line.consumption.member_id)
    grant = grant.order_by("pk").first()
    if grant is not None:
        request = services.start_refund_request(member=grant.member, store=north, kind="grant", actor=operator,
                                                reason="套餐未使用完，申请退款", grant=grant, payment_method="wechat")  # fmt: skip
        made.append(request.number)

    # A refund the manager rejected: the operator has a notification waiting.
    others = Consumption.objects.filter(
        member__in=owners[:24], store=north, lines__status=ConsumptionLine.Status.NORMAL
    )
    if line is not None:
        others = others.exclude(pk=line.consumption_id)
    other = others.order_by("-pk").first()
    if other is not None:
        rejected = services.start_refund_request(
            member=other.member, store=north, kind="lines", actor=operator, reason="顾客改变主意",
            lines=list(other.lines.filter(status=ConsumptionLine.Status.NORMAL)),
        )  # fmt: skip
        services.reject(rejected, actor=manager, reason="已超过退款期限")

    # A member change the merchant admin asks for (another operator of the store reviews it).
    change = services.start_member_change(member=owners[2], store=north, kind="name", actor=admin,
                                          reason="业主身份证更名", name=f"{owners[2].name}（更名）")  # fmt: skip
    made.append(change.number)
    # A staff onboarding for the manager to approve.
    onboarding = services.start_staff_onboarding(merchant=merchant, store=north, actor=admin, name="营业员小刘",
                                                 mobile="13900009999", username="clerk2", role="clerk",
                                                 reason="新店员入职")  # fmt: skip
    made.append(onboarding.number)
    # A recharge with a bonus over the merchant's limit (¥300 on ¥1,000, limit 20 %) for the merchant admin.
    free_value = services.start_free_value_request(
        member=owners[27], store=north, kind="recharge", actor=operator, reason="老业主续费回馈，经理口头同意",
        item=wallet.RechargeItem(kind="stored_value", amount_fen=100_000, bonus_fen=30_000), payment_method="wechat",
    )  # fmt: skip
    made.append(free_value.number)
    stdout.write(f"Demo approvals: {len(made)} requests waiting ({', '.join(made)}); one rejected.")
