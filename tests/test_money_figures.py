"""Large figures for people: 万 and 亿 (core.money.yuan_short, count_short)."""

from __future__ import annotations

import pytest
from django.utils import translation

from core.money import count_short, yuan, yuan_short


@pytest.mark.parametrize(
    "fen,shown",
    [
        (0, "¥0.00"),
        (123_456, "¥1,234.56"),
        (9_999_999, "¥99,999.99"),  # below 10万: exact
        (10_000_000, "¥10.00万"),
        (123_456_789, "¥123.46万"),  # ¥1,234,567.89, half up
        (1_234_567_800, "¥1,234.57万"),
        (9_999_999_999, "¥1.00亿"),  # 9,999.99999万 rounds up into 亿, never 10,000.00万
        (10_000_000_000, "¥1.00亿"),
        (12_345_678_900, "¥1.23亿"),
        (100_000_001_992_34, "¥1,000.00亿"),  # the issue's ¥100000001992.34
        (-1_234_567_800, "-¥1,234.57万"),
        (-5, "-¥0.05"),
    ],
)
def test_yuan_short_in_chinese(fen, shown):
    with translation.override("zh-hans"):
        assert yuan_short(fen) == shown


def test_yuan_short_rounds_half_up_not_to_even():
    with translation.override("zh-hans"):
        assert yuan_short(12_345_000) == "¥12.35万"  # 12.345万 → 12.35 (banker's rounding would give 12.34)


@pytest.mark.parametrize(
    "count,shown",
    [(0, "0"), (99_999, "99,999"), (100_000, "10.00万"), (123_456, "12.35万"), (250_000_000, "2.50亿")],
)
def test_count_short_in_chinese(count, shown):
    with translation.override("zh-hans"):
        assert count_short(count) == shown


def test_other_languages_read_the_exact_figure():
    with translation.override("en"):
        assert yuan_short(1_234_567_800) == yuan(1_234_567_800) == "¥12,345,678.00"
        assert count_short(123_456) == "123,456"
