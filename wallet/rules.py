"""Pure arithmetic rules of the wallet: rounding, the stored-value split, prepaid value per use,
commission and points. No database access; each is documented in docs/wallet.md."""

from __future__ import annotations

import datetime

# Units, uses or benefits one line (or one recharge's gifts) may count: far above any real sale, far
# below what could overflow a 32-bit quantity column or exhaust memory (each coupon unit is a grant row).
MAX_LINE_QUANTITY = 10_000


def apply_rate_bp(amount_fen: int, rate_bp: int) -> int:
    """amount × rate / 10000, rounded half up to the fen (amounts are never negative here)."""
    return (amount_fen * rate_bp + 5000) // 10000


def split_stored_value(amount: int, principal: int, bonus: int, policy: str) -> tuple[int, int]:
    """How much of `amount` to take from principal and from bonus.

    proportional: principal share = floor(amount × principal / (principal + bonus)); the bonus takes
    the remainder. Rounding the refundable principal down favours the member, and the remainder can
    never exceed the bonus balance. principal_first / bonus_first: drain one, then the other.
    Raises ValueError if the balances do not cover the amount.
    """
    if amount < 0 or principal < 0 or bonus < 0:
        raise ValueError("negative input")
    if amount > principal + bonus:
        raise ValueError("insufficient stored value")
    if amount == 0:
        return 0, 0
    if policy == "principal_first":
        from_principal = min(amount, principal)
        return from_principal, amount - from_principal
    if policy == "bonus_first":
        from_bonus = min(amount, bonus)
        return amount - from_bonus, from_bonus
    if policy != "proportional":
        raise ValueError(f"unknown spending policy {policy}")
    from_principal = amount * principal // (principal + bonus)
    return from_principal, amount - from_principal


def value_of_uses(deferred_left: int, uses_left: int, uses: int) -> int:
    """Value in fen of `uses` of the `uses_left` uses still held on a lot whose unrecognised prepaid
    value is `deferred_left` (the lot's own deferred-revenue account). The share rounds down and the
    last use takes whatever is left, so the uses of a lot are together worth exactly what was paid,
    whatever refunds happen in between (¥200 for 10 → ¥20 each; ¥10 for 3 → 3.33, 3.33, 3.34)."""
    if uses <= 0 or uses_left <= 0:
        return 0
    if uses >= uses_left:
        return deferred_left
    return deferred_left * uses // uses_left


def commission_for(kind: str, value: int, payable_fen: int, quantity: int, earned_fen: int) -> int:
    """fixed: value per unit; percent: basis points of the payable amount, half up. Capped at what the
    line earned (`earned_fen`: the money paid for it, or the prepaid value its uses recognise), so a bad
    catalog row can never pay staff more than the sale brought in."""
    if kind == "fixed":
        commission = value * quantity
    elif kind == "percent":
        commission = apply_rate_bp(payable_fen, value)
    else:
        return 0
    return max(0, min(commission, earned_fen))


def points_for(eligible_fen: int, points_per_yuan: int, multiplier_pct: int) -> int:
    """Whole points: fen/100 × points per yuan × level multiplier, rounded down."""
    return eligible_fen * points_per_yuan * multiplier_pct // (100 * 100)


def add_months(moment: datetime.datetime, months: int) -> datetime.datetime:
    """Same day and time `months` later; the day is clamped to the end of a shorter month."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    days_in_month = [31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
    return moment.replace(year=year, month=month, day=min(moment.day, days_in_month))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


PERIOD_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def days_begun(start: datetime.datetime, end: datetime.datetime) -> int:
    """Whole days from start to end, a begun day counting as one (0 if end is not after start)."""
    seconds = (end - start).total_seconds()
    return 0 if seconds <= 0 else -(-int(seconds) // 86400)


def value_of_days(price_fen: int, days: int, period_days: int) -> int:
    """What `days` of a `period_days` period priced `price_fen` are worth: pro rata, half up; never more
    than the price (a gifted VIP period partly enjoyed, docs/wallet.md §2.6)."""
    if days <= 0 or period_days <= 0:
        return 0
    days = min(days, period_days)
    return (price_fen * days * 2 + period_days) // (2 * period_days)


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split `total` fen by weights; the remainder goes to the first parts (deterministic)."""
    weight_sum = sum(weights)
    if weight_sum == 0:
        return [0] * len(weights)
    shares = [total * w // weight_sum for w in weights]
    for i in range(total - sum(shares)):
        shares[i % len(shares)] += 1
    return shares
