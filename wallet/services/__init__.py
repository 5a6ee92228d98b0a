"""The wallet's operations. Each public function is one atomic transaction that writes its numbered
business record and posts through the ledger API; a failure leaves nothing behind.

One module per concern (recharge, issuance, consumption, levels, refunds, expiry) over the shared checks
(`checks`), idempotency (`idempotency`) and leg building and locks (`postings`); which ledger account holds
what is `wallet.accounts`, pure arithmetic `wallet.rules`. Postings per operation are tabled in
docs/wallet.md. Callers import this package: `from wallet import services`.
"""

from ..accounts import CNY, POINT, points_lot_detail
from ..rules import MAX_LINE_QUANTITY
from .checks import wallet_settings
from .consumption import (
    ConsumptionItem,
    Funding,
    LinePrice,
    consume,
    consume_with_service_record,
    funded_item,
    price_line,
    record_service,
    unit_price_for,
)
from .expiry import ExpiryResult, expire_due_benefits
from .issuance import IssueResult, award_activity_points, issue_coupons, issue_voucher
from .recharge import RechargeItem, purchase_vip, recharge
from .refunds import cash_refund_grant, cash_refund_stored_value, refund_consumption_lines

__all__ = [
    "CNY",
    "MAX_LINE_QUANTITY",
    "POINT",
    "ConsumptionItem",
    "ExpiryResult",
    "Funding",
    "IssueResult",
    "LinePrice",
    "RechargeItem",
    "award_activity_points",
    "cash_refund_grant",
    "cash_refund_stored_value",
    "consume",
    "consume_with_service_record",
    "expire_due_benefits",
    "funded_item",
    "issue_coupons",
    "issue_voucher",
    "points_lot_detail",
    "price_line",
    "purchase_vip",
    "recharge",
    "record_service",
    "refund_consumption_lines",
    "unit_price_for",
    "wallet_settings",
]
