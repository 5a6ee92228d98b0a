import io

import pytest
from django.core.management import call_command

from ledger.models import Entry
from ledger.selectors import reconcile
from members.models import Owner, Staff
from wallet import services
from wallet.models import Recharge


@pytest.mark.django_db
def test_demo_data_loads_idempotently_with_real_balances():
    out = io.StringIO()
    call_command("load_demo_data", stdout=out)
    assert "demo-pass-2026" in out.getvalue()
    counts = (Owner.objects.count(), Staff.objects.count(), Recharge.objects.count(), Entry.objects.count())
    assert counts[0] == 50 and counts[1] == 5 and counts[2] > 20
    call_command("load_demo_data", stdout=io.StringIO())
    assert (Owner.objects.count(), Staff.objects.count(), Recharge.objects.count(), Entry.objects.count()) == counts
    assert reconcile().clean
    # Some benefits are already past their date: the expiry job has work to show.
    assert services.expire_due_benefits().grants == 3
