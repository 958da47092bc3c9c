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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
    """The contract's nested-choice flattening, strict: a key set twice is a :class:`TrialError`
    that names ``source``."""
    try:
        return contract.flatten_nested(overrides, strict=True)
    except contract.ContractError as exc:
        raise TrialError(f"{exc} by {source}") from None


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
            contract.flag_of(f.name),
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


def cache_root(env: Mapping[str, str] = os.environ) -> Path:
    """This project's cache folder (compiled kernels, decoded data sets, warm-trial sockets):
    ``$XDG_CACHE_HOME/nsr-search``, else ``~/.cache/nsr-search``."""
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nsr-search"


def default_data_root() -> str:
    """Where offline data sets live: ``$NSR_DATA_ROOT``, else under the user's data directory."""
    return os.environ.get("NSR_DATA_ROOT", str(Path.home() / ".local/share/nsr-search/data"))


@dataclass(frozen=True)
class RunParams:
    """What every trial entry takes: what to train, on what, for how long, and where.

    Each family redeclares ``model`` and ``dataset`` (through :func:`family_params`) and the
    defaults that differ (a redeclared field keeps its place, so every ``--help`` lists the shared
    knobs in one order)."""

    model: str = param("", "architecture")
    dataset: str = param("", "data set")
    seed: int = param(0, "training seed (weights and batch order)")
    epochs: int = param(100, "training epochs")
    lr: float = param(0.01, "learning rate")
    split_seed: int = param(0, "seed of the fixed train/validation split")
    data_root: str = param(default_data_root(), "where offline data sets live (env NSR_DATA_ROOT)")
    download: bool = param(True, "download a missing data set (where its source allows)")
    device: str = param("auto", "cpu, cuda or auto")
    threads: int = param(0, "torch CPU threads; 0 = torch's default")


@dataclass(frozen=True)
class RegularizedParams(RunParams):
    """The run knobs plus the regularizer's: which one, on which layers, how strong. NSR's λ are
    per layer (``lambda_<k>``), so each family declares its own (:func:`family_params`)."""

    layers: str = param(
        "last",
        "layers the regularizer acts on (NSR, Jacobian, VCL): 'none', 'last', or a list like '3,4'",
    )
    regularizer: str = param(
        "nsr", "nsr (NSR on --layers, λ from --lambda-<k>), l1, l2, jacobian, vcl or none"
    )
    queue_batches: int = param(5, "M: batches kept in NSR's class-mean memory queue")
    l1_weight: float = param(
        1e-5, "strength of L1: weight of Σ|w| over weight matrices/kernels (regularizer l1)"
    )
    l2_weight: float = param(
        1e-4, "strength of L2: weight of Σw² over weight matrices/kernels (regularizer l2)"
    )
    jacobian_weight: float = param(
        0.01,
        "strength of the Jacobian penalty λ_JR/2·||J||²_F of --layers' outputs w.r.t. the input "
        "(regularizer jacobian)",
    )
    jacobian_projections: int = param(
        1, "random projections per step that estimate ||J||²_F (jacobian)"
    )
    vcl_weight: float = param(0.1, "strength of the Variance Constancy Loss on --layers (vcl)")
    vcl_samples: int = param(0, "VCL's sub-batch size n (two sub-batches per step); 0 = half")


def family_params(
    model: tuple[str, Iterable[str]],
    dataset: tuple[str, Iterable[str]],
    lambdas: Iterable[int],
    notes: Mapping[int, str] | None = None,
) -> type[RegularizedParams]:
    """The frozen :class:`RegularizedParams` a family's params extend: its ``model`` and
    ``dataset`` (default, then the choices ``--help`` lists), and NSR's ``lambda_<k>: float = 1.0``
    for each layer k in ``lambdas``, placed right after the shared fields. ``notes`` adds a word to
    a layer's help (``{5: "ResNet-18's logits"}``)."""
    (model_default, models), (dataset_default, datasets) = model, dataset
    fields: list[tuple[str, type, Any]] = [
        ("model", str, param(model_default, f"architecture: {', '.join(models)}")),
        ("dataset", str, param(dataset_default, f"data set: {', '.join(datasets)}")),
    ]
    notes = notes or {}
    for i, k in enumerate(lambdas):
        # The first λ's help says when a λ is used, once for all of them.
        words = [f"used when layer {k} is in --layers"] if i == 0 else []
        words += [notes[k]] if k in notes else []
        suffix = f" ({'; '.join(words)})" if words else ""
        fields.append((contract.lambda_key(k), float, param(1.0, f"λ of layer {k}{suffix}")))
    base = dataclasses.make_dataclass(
        "FamilyParams", fields, bases=(RegularizedParams,), frozen=True
    )
    base.__module__ = __name__  # make_dataclass would name the 'types' module in reprs
    return base


def regularized_layers(params: RegularizedParams, available: Sequence[int]) -> list[int]:
    """The layers the trial's regularizer acts on, its input checked: NSR's layers (each λ > 0),
    Jacobian's or VCL's layers (at least one), none for L1, L2 and none (a strength > 0)."""
    kind = params.regularizer
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
    if params.jacobian_projections < 1:
        raise TrialError(f"jacobian_projections={params.jacobian_projections} must be >= 1")
    if params.vcl_samples < 0 or params.vcl_samples == 1:
        raise TrialError(f"vcl_samples={params.vcl_samples} must be 0 (half the batch) or >= 2")
    if kind not in contract.LAYERED:
        return []
    layers = resolve_layers(params.layers, available)
    if not layers:
        raise TrialError(
            f"regularizer={kind!r} acts on layers, but layers={params.layers!r}; "
            f"use 'last' or a comma list of {', '.join(map(str, available))}"
        )
    return layers


def chosen_lambdas(params: RegularizedParams, available: Sequence[int]) -> dict[int, float]:
    """Layer index -> λ for the layers in ``params.layers``; each λ must be > 0."""
    lambdas = {
        k: float(getattr(params, contract.lambda_key(k)))  # λ fields are declared per family
        for k in resolve_layers(params.layers, available)
    }
    for k, lam in lambdas.items():
        if not lam > 0:
            raise TrialError(
                f"{contract.lambda_key(k)}={lam} must be > 0 (use layers='none' for no NSR)"
            )
    return lambdas
