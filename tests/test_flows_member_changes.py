"""Member change requests: reviewed by another operator of the store, applied by members.services with the
checks re-run at apply time and a before/after record."""

import pytest
from django.core.exceptions import ValidationError
from viewflow.workflow.status import PROCESS

from flows import services
from flows.models import MemberChangeRequest, RequestTransition, State
from members.models import MemberCard, Owner
from tests.factories import LevelFactory, RoomFactory, make_owner
from tests.flows_helpers import fresh, history, make_office
from tests.wallet_helpers import load_plan

pytestmark = pytest.mark.django_db


def codes(exc: ValidationError) -> set[str]:
    return {e.code for errors in exc.error_dict.values() for e in errors}


def change(office, kind, actor=None, **fields):
    return services.start_member_change(
        member=office.member, store=office.store, kind=kind, actor=actor or office.operator, reason="业主来电",
        **fields,
    )  # fmt: skip


def test_mobile_change_applied_with_before_and_after():
    office = make_office()
    old = office.member.mobile
    request = change(office, "mobile", mobile="13912345678")
    assert Owner.objects.get(pk=office.member.pk).mobile == old  # nothing changes before the review
    services.approve(request, actor=office.operator2)
    request = fresh(request)
    assert request.state == State.EXECUTED
    assert Owner.objects.get(pk=office.member.pk).mobile == "13912345678"
    assert request.before == {"mobile": old} and request.after == {"mobile": "13912345678"}
    row = RequestTransition.objects.get(object_id=request.pk, name="mark_executed")
    assert (row.before, row.after) == ({"mobile": old}, {"mobile": "13912345678"})
    assert [h[0] for h in history(request)] == ["submit", "approve", "mark_executed"]
    assert request.process.status == PROCESS.DONE


def test_uniqueness_is_checked_again_when_applied():
    office = make_office()
    request = change(office, "mobile", mobile="13912345678")
    make_owner(office.merchant, mobile="13912345678")  # someone registers that number meanwhile
    with pytest.raises(ValidationError) as exc:
        services.approve(request, actor=office.operator2)
    assert codes(exc.value) == {"mobile_taken"}
    assert fresh(request).state == State.SUBMITTED  # the approval is refused: nothing changed
    assert Owner.objects.get(pk=office.member.pk).mobile != "13912345678"
    services.reject(request, actor=office.operator2, reason="号码已被占用")
    assert fresh(request).state == State.REJECTED


def test_submission_checks():
    office = make_office()
    taken = make_owner(office.merchant).mobile
    for kind, fields, code in [
        ("mobile", {"mobile": taken}, "mobile_taken"),
        ("mobile", {"mobile": "12345"}, "mobile_invalid"),
        ("mobile", {"mobile": office.member.mobile}, "value_unchanged"),
        ("name", {"name": " "}, "required"),
        ("status", {"status": "active"}, "status_unchanged"),
        ("status", {"status": "gone"}, "status_unknown"),
        ("level", {"level": LevelFactory()}, "other_merchant"),
        ("room_transfer", {"room": RoomFactory(building__estate__merchant=office.merchant),
                           "transfer_to": make_owner(office.merchant)}, "room_not_bound"),
    ]:  # fmt: skip
        with pytest.raises(ValidationError) as exc:
            change(office, kind, **fields)
        assert codes(exc.value) == {code}, kind
    assert not MemberChangeRequest.objects.exists()


def test_the_requester_cannot_review_and_a_manager_of_another_store_neither():
    office = make_office()
    request = change(office, "name", name="新名字")
    with pytest.raises(ValidationError) as exc:
        services.approve(request, actor=office.operator)
    assert codes(exc.value) == {"own_request"}
    with pytest.raises(ValidationError) as exc:
        services.approve(request, actor=office.other_manager)
    assert codes(exc.value) == {"review_forbidden"}
    services.approve(request, actor=office.admin)  # the merchant admin operates every store of theirs
    assert Owner.objects.get(pk=office.member.pk).name == "新名字"


def test_room_transfer_to_another_owner():
    office = make_office()
    room = RoomFactory(building__estate__merchant=office.merchant)
    office.member.rooms.add(room)
    buyer = make_owner(office.merchant)
    request = change(office, "room_transfer", room=room, transfer_to=buyer)
    services.approve(request, actor=office.operator2)
    assert not office.member.rooms.exists()
    assert list(buyer.rooms.all()) == [room]
    request = fresh(request)
    assert request.after["new_owner"] == buyer.member_number
    assert request.before["rooms"] == [str(room)] and request.after["rooms"] == []


def test_bound_rooms_and_level():
    office = make_office()
    rooms = [RoomFactory(building__estate__merchant=office.merchant) for _ in range(2)]
    services.approve(change(office, "rooms", rooms=rooms), actor=office.operator2)
    assert set(office.member.rooms.all()) == set(rooms)
    gold = LevelFactory(merchant=office.merchant, name="金卡")
    services.approve(change(office, "level", level=gold), actor=office.operator2)
    assert Owner.objects.get(pk=office.member.pk).level == gold


def test_freeze_unfreeze_and_card_replacement():
    office = make_office()
    services.approve(change(office, "status", status="frozen"), actor=office.operator2)
    assert Owner.objects.get(pk=office.member.pk).status == Owner.Status.FROZEN
    services.approve(change(office, "status", status="active"), actor=office.operator2)
    assert Owner.objects.get(pk=office.member.pk).status == Owner.Status.ACTIVE
    old = MemberCard.objects.get(owner=office.member, status="active")
    request = change(office, "card_replacement")
    services.approve(request, actor=office.operator2)
    assert MemberCard.objects.get(pk=old.pk).status == MemberCard.Status.REPLACED
    new = MemberCard.objects.get(owner=office.member, status="active")
    assert fresh(request).after == {"card": new.card_number}


def test_closing_needs_nothing_refundable_left():
    office = make_office()
    load_plan(office.shop)
    with pytest.raises(ValidationError) as exc:
        change(office, "status", status="closed")
    assert codes(exc.value) == {"member_has_balance"}


def test_closing_rechecked_when_applied():
    office = make_office()
    request = change(office, "status", status="closed")
    load_plan(office.shop)  # stored value bought after the request
    with pytest.raises(ValidationError) as exc:
        services.approve(request, actor=office.operator2)
    assert codes(exc.value) == {"member_has_balance"}
    assert Owner.objects.get(pk=office.member.pk).status == Owner.Status.ACTIVE


def test_closing_an_empty_membership_closes_its_cards():
    office = make_office()
    services.approve(change(office, "status", status="closed"), actor=office.operator2)
    assert Owner.objects.get(pk=office.member.pk).status == Owner.Status.CLOSED
    assert not MemberCard.objects.filter(owner=office.member, status="active").exists()
    with pytest.raises(ValidationError) as exc:
        change(office, "name", name="x")
    assert codes(exc.value) == {"membership_closed"}


def test_one_open_request_per_member_and_kind():
    office = make_office()
    change(office, "name", name="甲")
    with pytest.raises(ValidationError) as exc:
        change(office, "name", name="乙")
    assert codes(exc.value) == {"request_pending"}
