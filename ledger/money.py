"""Kept for imports written before `core.money` existed."""

from core.money import format_fen, parse_fen, yuan

__all__ = ["format_fen", "parse_fen", "yuan"]
