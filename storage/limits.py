"""What the database columns can hold, applied to parsed rows before they are written.

NNI's files and REST answers are not ours: a seed of 2**70, a 10 kB experiment name, a NUL
character or a lone surrogate in a string, NaN in a float column or an object nested a thousand
levels deep are all possible. SQLite stores most of them as they come; PostgreSQL rejects them
(``DataError``), which made every later sync of the experiment fail. Here every value is made to
fit its column, read from the table definitions themselves (so a new column is covered without a
change here): what cannot be stored as it is becomes NULL or is shortened, and the trial's
parameters (JSON) keep the raw value for whoever looks. Only an identity that cannot be made to fit
(an experiment or trial id longer than its column) refuses the experiment, naming the value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String, Table, Text

from storage.errors import InvalidValue
from storage.models import Experiment, Trial, TrialLayer

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
# Deeper JSON than this is kept as its (shortened) text: orjson stops at 255 levels, Python's json
# at ~1000 with a RecursionError, and nothing in an NNI search space or metric nests beyond 3.
MAX_JSON_DEPTH = 32
# A string inside a JSON value (a parameter, a config entry) longer than this is shortened.
MAX_JSON_STRING = 10_000
# Identity columns: a value that does not fit refuses the experiment rather than be truncated
# (two ids that differ only after the cut would merge).
KEY_COLUMNS = {"nni_id", "trial_job_id"}

# NUL (PostgreSQL text cannot hold it) and lone surrogates (not encodable as UTF-8: psycopg and
# sqlite3 both raise on them).
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str, max_len: int | None = None) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD, cut to ``max_len`` characters."""
    if _BAD_CHARS.search(value):
        value = _BAD_CHARS.sub("\ufffd", value)
    if max_len is not None and len(value) > max_len:
        value = value[: max(max_len - 1, 0)] + "…"
    return value


def _short_repr(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def clean_json(value: Any, depth: int = 0) -> Any:
    """A JSON value every back end stores and reads back: finite floats (others as text, like
    ``parse._json_safe``), ints within 64 bits (larger ones as their digits), clean strings, at
    most ``MAX_JSON_DEPTH`` levels (deeper parts as shortened text)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else clean_text(str(value), 100)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value, MAX_JSON_STRING)
    if depth >= MAX_JSON_DEPTH:
        try:
            text = json.dumps(value, default=str)
        except (ValueError, TypeError, RecursionError):
            text = "<nested too deep>"
        return clean_text(text, 1000)
    if isinstance(value, dict):
        return {clean_text(str(k), 200): clean_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(v, depth + 1) for v in value]
    return clean_text(str(value), MAX_JSON_STRING)


def _fit(table: Table, column: str, value: Any) -> Any:
    col = table.c[column]
    ctype = col.type
    if value is None:
        return None
    if isinstance(ctype, Integer):  # BigInteger is a subclass: test it first
        lo, hi = INT64 if isinstance(ctype, BigInteger) else INT32
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            if not col.nullable:
                raise InvalidValue(
                    f"{table.name}.{column}={_short_repr(value)} is out of range: "
                    f"allowed integers {lo}..{hi}"
                )
            return None
        return value
    if isinstance(ctype, Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            f = float(value)
        except OverflowError:  # an int beyond a double
            return None
        return f if math.isfinite(f) else None
    if isinstance(ctype, String | Text):  # Text is a String; String(n) has a length
        text = value if isinstance(value, str) else str(value)
        max_len = getattr(ctype, "length", None)
        if column in KEY_COLUMNS and max_len is not None and len(text) > max_len:
            raise InvalidValue(
                f"{column} {_short_repr(text, 80)} is {len(text)} characters long: "
                f"at most {max_len} allowed"
            )
        if column in KEY_COLUMNS and _BAD_CHARS.search(text):
            raise InvalidValue(f"{column} {_short_repr(text, 80)} holds NUL or unpaired surrogates")
        return clean_text(text, max_len)
    if isinstance(ctype, JSON):
        return clean_json(value)
    return value


def fit_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with each value made to fit its column of ``table`` (see the module doc)."""
    return {k: _fit(table, k, v) if k in table.c else v for k, v in row.items()}


def fit_experiment_rows(
    row: dict[str, Any], trials: Iterable[tuple[dict[str, Any], list[dict[str, Any]]]]
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """The experiment row and its (trial row, layer rows) as the database can store them."""
    exp_table, trial_table = Experiment.__table__, Trial.__table__
    layer_table = TrialLayer.__table__
    fitted = []
    for trial, layers in trials:
        kept = []
        for lr in layers:
            try:
                kept.append(fit_row(layer_table, lr))  # type: ignore[arg-type]
            except InvalidValue:
                # A layer index beyond any network (lambda_99999999999): the trial's parameters
                # keep the key; there is no per-layer row to make of it.
                continue
        fitted.append((fit_row(trial_table, trial), kept))  # type: ignore[arg-type]
    return fit_row(exp_table, row), fitted  # type: ignore[arg-type]
