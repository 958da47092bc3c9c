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

import functools
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson
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
    """A JSON value every back end stores and reads back: ints within 64 bits (larger ones as
    their digits), strings without lone surrogates, at most ``MAX_JSON_DEPTH`` levels (deeper
    parts as shortened text), non-finite floats as text (PostgreSQL's JSON has no NaN).

    What orjson serializes as it is (no int beyond 64 bits, no surrogate, at most 255 levels)
    is returned unchanged: the common case, checked in C, since this runs on every trial."""
    if depth == 0 and isinstance(value, dict | list):
        try:
            orjson.dumps(value)
            return value
        except (orjson.JSONEncodeError, TypeError):
            pass
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


Checker = Callable[[Any], Any]


def _int_checker(name: str, lo: int, hi: int, nullable: bool) -> Checker:
    def check(value: Any) -> Any:
        if value is None or (type(value) is int and lo <= value <= hi):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
            return int(value)
        if not nullable:
            raise InvalidValue(f"{name}={_short_repr(value)} is out of range: allowed integers "
                               f"{lo}..{hi}")  # fmt: skip
        return None

    return check


def finite_float(value: Any) -> float | None:
    """A finite float from an int or a float; None for anything else (bool, text, inf, NaN, an int
    beyond a double)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:  # an int beyond a double
        return None
    return f if math.isfinite(f) else None


def _float_checker(value: Any) -> Any:
    if value is None or (type(value) is float and math.isfinite(value)):
        return value  # the common case, without a call
    return finite_float(value)


def _text_checker(column: str, max_len: int | None) -> Checker:
    def check(value: Any) -> Any:
        if value is None:
            return None
        text = value if isinstance(value, str) else str(value)
        if column in KEY_COLUMNS:
            if max_len is not None and len(text) > max_len:
                raise InvalidValue(f"{column} {_short_repr(text, 80)} is {len(text)} characters "
                                   f"long: at most {max_len} allowed")  # fmt: skip
            if _BAD_CHARS.search(text):
                raise InvalidValue(f"{column} {_short_repr(text, 80)} holds NUL or unpaired "
                                   "surrogates")  # fmt: skip
        return clean_text(text, max_len)

    return check


@functools.cache
def _checkers(table: Table) -> dict[str, Checker]:
    """Per column of ``table``, what makes a value fit it (from the column's type)."""
    out: dict[str, Checker] = {}
    for col in table.columns:
        ctype = col.type
        if isinstance(ctype, Integer):  # BigInteger is a subclass
            lo, hi = INT64 if isinstance(ctype, BigInteger) else INT32
            out[col.name] = _int_checker(f"{table.name}.{col.name}", lo, hi, bool(col.nullable))
        elif isinstance(ctype, Float):
            out[col.name] = _float_checker
        elif isinstance(ctype, String | Text):  # Text is a String; String(n) has a length
            out[col.name] = _text_checker(col.name, getattr(ctype, "length", None))
        elif isinstance(ctype, JSON):
            out[col.name] = clean_json
    return out


def fit_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with each value made to fit its column of ``table`` (see the module doc)."""
    checks = _checkers(table)
    return {k: check(v) if (check := checks.get(k)) is not None else v for k, v in row.items()}


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
