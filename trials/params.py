"""Trial parameters: a frozen dataclass of defaults, overridden by CLI flags, then by NNI.

Every trial entry declares its hyperparameters in one place (a frozen dataclass whose fields carry
``help`` metadata). The same declaration builds the ``--help`` of ``python -m trials.<entry>`` and
validates NNI's parameter dict: an unknown key is an error that names the key and the allowed ones,
so a typo in a search space fails the first trial loudly instead of silently searching nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from trials import contract

P = TypeVar("P")


class TrialError(Exception):
    """Bad input or missing data: reported as one line, and the trial exits non-zero."""


def param(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's keyword
    return dataclasses.field(default=default, metadata={"help": help})


def _base_type(tp: Any) -> type:
    """``int | None`` -> int; plain types unchanged."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def field_types(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: _base_type(hints[f.name]) for f in dataclasses.fields(cls)}


def coerce(name: str, value: Any, tp: type) -> Any:
    """Convert a CLI string or an NNI JSON value to the field's type, or explain why not."""
    try:
        if tp is bool:
            if isinstance(value, str):
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if tp is float:
            number = float(value)
            if not math.isfinite(number):
                # inf/nan parse as floats, but no hyperparameter here means anything by them.
                raise TrialError(f"parameter {name}={value!r} must be a finite number")
            return number
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise TrialError(f"parameter {name}={value!r} is not a valid {tp.__name__}")


def flatten_nested(overrides: Mapping[str, Any], source: str) -> dict[str, Any]:
    """NNI's nested ``choice`` hands a trial ``{"regularizer": {"_name": "l1", "l1_weight": x}}``:
    the chosen branch's name becomes the key's value and its own keys sit beside it, flat
    (``{"regularizer": "l1", "l1_weight": 1e-5}``), at any depth. A key set twice is an error."""
    flat: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in flat:
            raise TrialError(f"parameter {key!r} is set twice by {source}")
        flat[key] = value

    for key, value in overrides.items():
        if isinstance(value, Mapping) and "_name" in value:
            put(key, value["_name"])
            inner = {k: v for k, v in value.items() if k != "_name"}
            for k, v in flatten_nested(inner, source).items():
                put(k, v)
        else:
            put(key, value)
    return flat


def merge(cls: type[P], base: P, overrides: Mapping[str, Any], source: str) -> P:
    """Return ``base`` with ``overrides`` applied (NNI's nested choices flattened first); unknown
    keys are a :class:`TrialError`."""
    overrides = flatten_nested(overrides, source)
    types_ = field_types(cls)
    unknown = sorted(set(overrides) - set(types_))
    if unknown:
        raise TrialError(
            f"unknown parameter {unknown[0]!r} from {source}; allowed: {', '.join(types_)}"
        )
    values = {k: coerce(k, v, types_[k]) for k, v in overrides.items()}
    return dataclasses.replace(base, **values)  # type: ignore[type-var]


def build_parser(cls: type, prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    types_ = field_types(cls)
    for f in dataclasses.fields(cls):
        tp = types_[f.name]
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=argparse.SUPPRESS,
            metavar=tp.__name__.upper(),
            help=f"{f.metadata.get('help', '')} (default: {f.default!r})",
        )
    return parser


def from_cli(cls: type[P], argv: Sequence[str] | None, prog: str, description: str) -> P:
    """Defaults, then CLI flags, then (inside an NNI trial) NNI's parameters."""
    args = vars(build_parser(cls, prog, description).parse_args(argv))
    params = merge(cls, cls(), args, "the command line")
    if running_under_nni():
        import nni  # deferred: importing NNI costs ~1 s that a CLI run does not need

        overrides = budget_as_epochs(nni.get_next_parameter() or {})
        params = merge(cls, params, overrides, "NNI's search space")
    return params


def budget_as_epochs(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """NNI's parameters with a multi-fidelity tuner's ``TRIAL_BUDGET`` turned into ``epochs``.

    Hyperband and BOHB add ``TRIAL_BUDGET`` (their resource, here epochs: set their ``R`` or
    ``max_budget`` to the full epoch count) beside the searched keys. BOHB's budgets can be
    fractional: a trial trains whole epochs, at least one, rounding up.
    """
    out = dict(overrides)
    if contract.TRIAL_BUDGET not in out:
        return out
    budget = out.pop(contract.TRIAL_BUDGET)
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0:
        raise TrialError(f"{contract.TRIAL_BUDGET}={budget!r} from NNI must be a number > 0")
    if not math.isfinite(budget):
        raise TrialError(f"{contract.TRIAL_BUDGET}={budget!r} from NNI must be finite")
    # 1e-9: a budget like 81/3**2 computed in floats (9.000000000000002) stays 9 epochs.
    out[contract.EPOCHS] = max(1, math.ceil(budget - 1e-9))
    return out


def running_under_nni() -> bool:
    # NNI sets these for every trial process it launches.
    return "NNI_PLATFORM" in os.environ and "NNI_TRIAL_JOB_ID" in os.environ


def resolve_layers(spec: Any, available: Sequence[int]) -> list[int]:
    """The contract's layer parsing (``contract.parse_layers``) at the trial boundary: a bad spec
    is a :class:`TrialError`, one line that names it and the model's layers."""
    try:
        return contract.parse_layers(spec, available)
    except contract.ContractError as exc:
        raise TrialError(str(exc)) from None


def require_choice(name: str, value: str, allowed: Sequence[str] | Mapping[str, Any]) -> None:
    if value not in allowed:
        raise TrialError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


def require_at_least(params: object, bounds: Mapping[str, int]) -> None:
    """Each named integer parameter must be >= its bound."""
    for name, low in bounds.items():
        value = getattr(params, name)
        if value < low:
            raise TrialError(f"{name}={value} must be >= {low}")


REGULARIZER_HELP = {
    "regularizer": "nsr (NSR on --layers, λ from --lambda-<k>), l1, l2, jacobian, vcl or none",
    "l1_weight": "strength of L1: weight of Σ|w| over weight matrices/kernels (regularizer l1)",
    "l2_weight": "strength of L2: weight of Σw² over weight matrices/kernels (regularizer l2)",
    "jacobian_weight": "strength of the Jacobian penalty λ_JR/2·||J||²_F of --layers' outputs "
    "w.r.t. the input (regularizer jacobian)",
    "jacobian_projections": "random projections per step that estimate ||J||²_F (jacobian)",
    "vcl_weight": "strength of the Variance Constancy Loss on --layers (regularizer vcl)",
    "vcl_samples": "VCL's sub-batch size n (two sub-batches per step); 0 = half the batch",
}


def regularized_layers(params: object, available: Sequence[int]) -> list[int]:
    """The layers the trial's regularizer acts on, its input checked: NSR's layers (each λ > 0),
    Jacobian's or VCL's layers (at least one), none for L1, L2 and none (a strength > 0)."""
    kind = params.regularizer  # type: ignore[attr-defined]
    require_choice("regularizer", kind, contract.REGULARIZERS)
    if kind == contract.NSR:
        return sorted(chosen_lambdas(params, available))
    strength_key = contract.STRENGTH_KEYS.get(kind)
    if strength_key is not None:
        value = float(getattr(params, strength_key))
        if not value > 0:
            low, high = contract.STRENGTH_RANGES[strength_key]
            raise TrialError(
                f"{strength_key}={value} must be > 0 (searched loguniform in [{low:g}, {high:g}];"
                " use regularizer='none' for no regularizer)"
            )
    if getattr(params, "jacobian_projections", 1) < 1:
        raise TrialError(f"jacobian_projections={params.jacobian_projections} must be >= 1")  # type: ignore[attr-defined]
    samples = getattr(params, "vcl_samples", 0)
    if samples < 0 or samples == 1:
        raise TrialError(f"vcl_samples={samples} must be 0 (half the batch) or >= 2")
    if kind not in contract.LAYERED:
        return []
    layers = resolve_layers(params.layers, available)  # type: ignore[attr-defined]
    if not layers:
        raise TrialError(
            f"regularizer={kind!r} acts on layers, but layers={params.layers!r}; "  # type: ignore[attr-defined]
            f"use 'last' or a comma list of {', '.join(map(str, available))}"
        )
    return layers


def chosen_lambdas(params: object, available: Sequence[int]) -> dict[int, float]:
    """Layer index -> λ for the layers in ``params.layers``; each λ must be > 0."""
    lambdas = {
        k: float(getattr(params, f"lambda_{k}"))
        for k in resolve_layers(params.layers, available)  # type: ignore[attr-defined]
    }
    for k, lam in lambdas.items():
        if not lam > 0:
            raise TrialError(f"lambda_{k}={lam} must be > 0 (use layers='none' for no NSR)")
    return lambdas
