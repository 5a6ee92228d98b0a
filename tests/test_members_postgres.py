"""Registration races on PostgreSQL with real threads (issue 9, item 12): the loser of two
registrations of one mobile number (or one username) gets a field error, never an IntegrityError."""

from __future__ import annotations

import threading

import pytest

from core.errors import DomainError
from members import roles, services
from members.models import AuditEvent, MemberCard, Owner, Staff
from tests.factories import MerchantFactory, make_owner
from tests.test_ledger_postgres import run_threads

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _race(count: int, call) -> tuple[list, list[DomainError]]:
    won, lost = [], []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        try:
            result = call(i)
        except DomainError as exc:
            with lock:
                lost.append(exc)
        else:
            with lock:
                won.append(result)

    assert run_threads(count, attempt) == []  # no IntegrityError, nothing but DomainErrors
    return won, lost


def test_eight_registrations_of_one_mobile_at_once_register_it_once():
    merchant = MerchantFactory()
    won, lost = _race(8, lambda i: services.register_owner(merchant=merchant, name=f"抢号{i}", mobile="13912340000",
                                                           actor=None))  # fmt: skip
    assert len(won) == 1 and len(lost) == 7
    assert {(e.field, e.code) for e in lost} == {("mobile", "mobile_taken")}
    assert "13912340000" in lost[0].message_text
    owner = Owner.objects.get(merchant=merchant, mobile="13912340000")
    # The losers left nothing behind: one owner, one card, one audit record.
    assert Owner.objects.filter(merchant=merchant).count() == 1
    assert MemberCard.objects.filter(owner__merchant=merchant).count() == 1
    assert AuditEvent.objects.filter(action="owner.registered", merchant=merchant).count() == 1
    assert owner.pk == won[0].pk


def test_a_mobile_change_racing_a_registration_of_the_same_number():
    merchant = MerchantFactory()
    existing = make_owner(merchant, mobile="13912340001")

    def attempt(i: int):
        if i % 2:
            return services.update_owner(Owner.objects.get(pk=existing.pk), actor=None, mobile="13912340002")
        return services.register_owner(merchant=merchant, name=f"新{i}", mobile="13912340002", actor=None)

    won, lost = _race(6, attempt)
    assert {(e.field, e.code) for e in lost} == {("mobile", "mobile_taken")}
    assert Owner.objects.filter(merchant=merchant, mobile="13912340002").count() == 1


def test_eight_staff_with_one_username_at_once_create_it_once():
    merchant = MerchantFactory()
    won, lost = _race(8, lambda i: services.create_staff(merchant=merchant, username="same-name", name=f"员工{i}",
                                                         role=roles.OPERATOR, actor=None))  # fmt: skip
    assert len(won) == 1 and {(e.field, e.code) for e in lost} == {("username", "username_taken")}
    assert Staff.objects.filter(merchant=merchant).count() == 1


def test_a_number_taken_in_an_open_transaction_does_not_hold_up_the_next_one():
    """Business numbers come from their own short transaction (members.numbering): while one operation
    of the merchant is still open after taking its number, another operation takes the next number at
    once instead of queueing behind the first one's commit (issue 10: no lock waits on numbering)."""
    from django.db import connection, transaction

    merchant = MerchantFactory()
    taken, released = threading.Event(), threading.Event()
    numbers: list[str] = []

    def long_operation() -> None:
        try:
            with transaction.atomic():
                numbers.append(services.next_business_number(merchant, "xf"))
                taken.set()
                released.wait(30)  # the operation is still running: its transaction stays open
        finally:
            connection.close()

    first = threading.Thread(target=long_operation)
    first.start()
    assert taken.wait(30)
    second_done = threading.Event()

    def quick_operation() -> None:
        try:
            with transaction.atomic():
                numbers.append(services.next_business_number(merchant, "xf"))
            second_done.set()
        finally:
            connection.close()

    second = threading.Thread(target=quick_operation)
    second.start()
    finished_while_first_open = second_done.wait(20)
    released.set()
    first.join()
    second.join()
    assert finished_while_first_open, "the second number waited for the first operation to commit"
    assert len(set(numbers)) == 2


def test_a_rolled_back_operation_leaves_a_gap_never_a_repeat():
    from django.db import transaction

    merchant = MerchantFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.next_business_number(merchant, "cz")
        raise RuntimeError("the operation failed after taking its number")
    second = services.next_business_number(merchant, "cz")
    assert second.endswith("002")
