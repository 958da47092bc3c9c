"""Page bounds shared by every listing."""

from __future__ import annotations

from storage.errors import InvalidValue

MAX_LIMIT = 1000
# Offsets must fit the drivers' integers (a larger one overflowed SQLite's into a 500).
MAX_OFFSET = 2**31 - 1


def check_page(limit: int, offset: int) -> None:
    """InvalidValue naming the allowed range when ``limit`` or ``offset`` is outside it."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidValue(f"limit={limit} is out of range: allowed 1..{MAX_LIMIT}")
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidValue(f"offset={offset} is out of range: allowed 0..{MAX_OFFSET}")
