"""The contract between trials and storage: every key a trial reads from NNI or reports to it.

Trials import it to name what they report; ``storage/`` imports it to read the same reports back.
It imports nothing heavy (no torch, no NNI), so the results service can use it without a trial
stack. ARCHITECTURE.md, "The trial contract", describes it in prose.

Search-space keys (what NNI hands a trial):
    ``layers``       the regularized layer subset: ``"none"`` (vanilla), ``"4"``, ``"3,4"``...
    ``lambda_<k>``   NSR's λ of layer k (only the λ of layers in ``layers`` take effect)
    ``regularizer``  ``nsr`` (default) or a baseline, with its own strength key (``STRENGTH_KEYS``,
                     searched loguniform in ``STRENGTH_RANGES``); NNI's nested choice hands it as
                     ``{"_name": family, <its keys>}``, which the trial flattens
    ``seed``         the training seed
    ``TRIAL_BUDGET`` added by NNI's multi-fidelity tuners (Hyperband, BOHB): the epochs this trial
                     may train; the trial runs ``epochs = ceil(TRIAL_BUDGET)`` and reports it

Final report (``nni.report_final_result``): a dict of flat numbers plus one nested object:
    ``default``        best validation error in % (what the tuner minimizes, never the test error)
    ``test_error``     test error in % at the best validation epoch
    ``best_epoch``     1-based epoch of the best validation error
    ``epochs_run``     epochs actually trained (less than the budget when stopped early)
    ``epoch_seconds``  mean training seconds per epoch
    ``var_<k>``, ``var_<k>_init``, ``varmean_<k>``   intra-class variance of layer k (end / init)
    ``nonfinite``      how many values were replaced by ``NONFINITE_VALUE`` (a diverged run)
    ``config``         the effective configuration the trial trained with (``config_of``): the
                       source of truth for storage, ahead of NNI's parameter records.

Identity: a trial's *configuration* is its effective config without the seed (``config_identity``);
its *budget* (``budget_of``) is the part that makes results comparable at all (epochs, learning
rate, batch size); answers rank trials only within one budget.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# ---------------------------------------------------------------- search-space keys
LAYERS = "layers"
REGULARIZER = "regularizer"
SEED = "seed"
LAMBDA_PREFIX = "lambda_"
LAMBDA_KEY = re.compile(r"^lambda_(\d+)$")

VANILLA_LAYERS = "none"

#: Hyperband and BOHB hand each trial its resource under this key (their own name for it); the
#: trials read it as their epoch budget, the parameter ``EPOCHS``.
TRIAL_BUDGET = "TRIAL_BUDGET"
EPOCHS = "epochs"

#: Regularizer families and the parameter that holds each one's strength (NSR: per-layer λ).
NSR = "nsr"
NO_REGULARIZER = "none"
STRENGTH_KEYS: dict[str, str] = {
    "l1": "l1_weight",
    "l2": "l2_weight",
    "jacobian": "jacobian_weight",
    "vcl": "vcl_weight",
}
REGULARIZERS: tuple[str, ...] = (NSR, *STRENGTH_KEYS, NO_REGULARIZER)

#: Loguniform search range of each strength (trials/regularizers.py defines the penalties).
#: L1/L2 are sums over all weights (MLP-4: ~2·10⁵ of them), hence their small weights; Jacobian is
#: Hoffman et al.'s λ_JR (their MNIST runs: 0.01-0.05); VCL is Littwin & Wolf's γ.
STRENGTH_RANGES: dict[str, tuple[float, float]] = {
    "l1_weight": (1e-7, 1e-3),
    "l2_weight": (1e-6, 1e-2),
    "jacobian_weight": (1e-4, 1.0),
    "vcl_weight": (1e-3, 10.0),
}

#: Regularizers that act on the layers in ``layers`` (the others act on all weights, or nothing).
LAYERED: frozenset[str] = frozenset({NSR, "jacobian", "vcl"})

#: Knobs that only matter to one family: left out of other families' configurations.
FAMILY_KEYS: dict[str, tuple[str, ...]] = {
    NSR: ("queue_batches",),
    "jacobian": ("jacobian_projections",),
    "vcl": ("vcl_samples",),
}

#: NNI's trial statuses as storage keeps them (NNI's ``USER_CANCELED`` of a trial its assessor
#: stopped is stored ``EARLY_STOPPED``); a result of an unfinished status is partial.
EARLY_STOPPED = "EARLY_STOPPED"
SUCCEEDED = "SUCCEEDED"
TRIAL_STATUSES: tuple[str, ...] = (
    "WAITING", "RUNNING", SUCCEEDED, "FAILED", "USER_CANCELED", "SYS_CANCELED", EARLY_STOPPED,
    "UNKNOWN",
)  # fmt: skip
#: Statuses after which NNI records nothing more of a trial.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {SUCCEEDED, "FAILED", "USER_CANCELED", "SYS_CANCELED", EARLY_STOPPED}
)

# ---------------------------------------------------------------- final-report keys
DEFAULT = "default"
TEST_ERROR = "test_error"
BEST_EPOCH = "best_epoch"
EPOCHS_RUN = "epochs_run"
EPOCH_SECONDS = "epoch_seconds"
NONFINITE = "nonfinite"
NONFINITE_VALUE = 1e9  # NNI's JSON cannot carry NaN/inf
CONFIG = "config"
VAR_KEY = re.compile(r"^var_(\d+)(_init)?$")

#: This project's trial entries (``python -m trials.<entry>``), each with its ``<ENTRY>Params``.
ENTRIES: tuple[str, ...] = ("mlp", "cnn", "gnn")
#: Where a stored configuration came from: only "report" is a trial of this project telling it.
CONFIG_FROM_REPORT = "report"

#: Configuration keys that name what was trained; ``ENTRY`` is the trial module (mlp, cnn, gnn).
ENTRY = "entry"
MODEL = "model"
DATASET = "dataset"

#: The training budget: trials that differ here are not ranked together.
BUDGET_KEYS: tuple[str, ...] = ("epochs", "lr", "batch_size")

#: Trial parameters that change where or how fast a trial runs, never its result.
RUNTIME_KEYS = frozenset(
    {"data_root", "download", "device", "threads", "probe_samples", "eval_batch"}
)


def lambda_key(layer: int) -> str:
    return f"{LAMBDA_PREFIX}{layer}"


def lambda_layer(key: str) -> int | None:
    """The layer a ``lambda_<k>`` key is NSR's λ of, else None."""
    m = LAMBDA_KEY.match(key)
    return int(m.group(1)) if m else None


def var_key(layer: int) -> str:
    return f"var_{layer}"


def var_init_key(layer: int) -> str:
    return f"var_{layer}_init"


def varmean_key(layer: int) -> str:
    return f"varmean_{layer}"


class ContractError(ValueError):
    """A value that does not follow the contract; the message names it and what is allowed."""


def parse_layers(spec: Any, available: Sequence[int] | None = None) -> list[int]:
    """``"none"``/``""``/None -> [], ``"3,4"`` -> [3, 4], ``4`` -> [4], ``"last"`` -> [max].

    With ``available`` (a trial knows its model) every index is checked against it; without it
    (storage reading a record) ``"last"`` cannot be resolved and is an error, like any index < 1.
    """
    if spec is None or isinstance(spec, bool):
        if spec is None:
            return []
        raise ContractError(f"layers={spec!r} is not a layer list")
    allowed = ", ".join(str(k) for k in available) if available is not None else "indices >= 1"
    hint = f"use 'none', 'last' or a comma list of {allowed}"
    if isinstance(spec, int):
        parts: list[str] = [str(spec)]
    else:
        text = str(spec).strip().lower()
        if text in {VANILLA_LAYERS, ""}:
            return []
        if text == "last":
            if not available:
                raise ContractError(f"layers={spec!r}: 'last' needs the model's layers")
            return [max(available)]
        parts = text.split(",")
    layers: set[int] = set()
    for part in parts:
        try:
            k = int(part)
        except ValueError:
            raise ContractError(
                f"layers={spec!r}: {part.strip()!r} is not a layer index; {hint}"
            ) from None
        if available is not None and k not in available:
            raise ContractError(
                f"layers={spec!r}: the model has no layer {k}; its layers are {allowed}"
            )
        if k < 1:
            raise ContractError(f"layers={spec!r}: layer {k} is not >= 1; {hint}")
        layers.add(k)
    return sorted(layers)


def format_layers(layers: Iterable[int]) -> str:
    """The canonical string of a layer subset: ``"none"`` or sorted ``"3,4"``."""
    ks = sorted(set(layers))
    return ",".join(map(str, ks)) if ks else VANILLA_LAYERS


def family_of(regularizer: str | None, layers: Sequence[int]) -> str:
    """``vanilla`` (nothing regularizes), ``nsr`` (NSR on some layers) or the baseline's name."""
    reg = (regularizer or NSR).lower()
    if reg == NO_REGULARIZER or (reg == NSR and not layers):
        return "vanilla"
    return reg


def _inert(key: str, regularizer: str, active: set[int] | None) -> bool:
    """Whether ``key`` had no effect under ``regularizer`` with regularized layers ``active``:
    NSR's λ of other layers (all of them under a baseline), other families' strengths and knobs."""
    m = LAMBDA_KEY.match(key)
    if m:
        return regularizer != NSR or (active is not None and int(m.group(1)) not in active)
    for family, keys in FAMILY_KEYS.items():
        if key in keys:
            return family != regularizer
    for family, strength in STRENGTH_KEYS.items():
        if key == strength:
            return family != regularizer
    return False


def config_of(params: Mapping[str, Any], layers: Sequence[int], entry: str) -> dict[str, Any]:
    """The effective configuration a trial reports: its parameters without runtime knobs, with
    ``layers`` resolved (the layers its regularizer acts on; none for L1/L2/none), NSR's λ only
    for regularized layers and a baseline's strength only for that baseline (the rest had no
    effect)."""
    active = set(layers)
    regularizer = str(params.get(REGULARIZER, NSR))
    config: dict[str, Any] = {ENTRY: entry}
    for key, value in params.items():
        if key in RUNTIME_KEYS or _inert(key, regularizer, active):
            continue
        config[key] = value
    config[LAYERS] = format_layers(layers)
    return config


def budget_of(config: Mapping[str, Any]) -> str | None:
    """``"epochs=15 lr=0.1 batch_size=100"``: the budget part of a configuration, or None when
    no budget key is known (a foreign trial)."""
    parts = []
    for key in BUDGET_KEYS:
        if key in config and config[key] is not None:
            parts.append(f"{key}={_canonical(config[key])}")
    return " ".join(parts) if parts else None


def parse_budget(text: str) -> dict[str, str]:
    """The inverse of ``budget_of`` (values as text): ``"epochs=15 lr=0.1"`` -> {...}."""
    out: dict[str, str] = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if not sep or key not in BUDGET_KEYS:
            raise ContractError(
                f"budget {text!r}: {part!r} is not key=value with a key of {', '.join(BUDGET_KEYS)}"
            )
        out[key] = value
    return out


def config_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a configuration across seeds: the config without seed and runtime knobs,
    and without the λ of layers that are not regularized."""
    try:
        active: set[int] | None = set(parse_layers(config.get(LAYERS)))
    except ContractError:
        active = None
    regularizer = str(config.get(REGULARIZER, NSR))
    out = {}
    for key, value in config.items():
        if key == SEED or key in RUNTIME_KEYS or _inert(key, regularizer, active):
            continue
        out[key] = value
    return out


def _canonical(value: Any) -> str:
    if isinstance(value, float):
        if value.is_integer() and math.isfinite(value):
            return str(int(value))
        return repr(value)
    return str(value)


# ---------------------------------------------------------------- NNI's nested choices
def flatten_nested(params: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
    """NNI's nested ``choice`` hands ``{"regularizer": {"_name": "l1", "l1_weight": x}}``: the
    chosen branch's name becomes the key's value and its own keys sit beside it, flat
    (``{"regularizer": "l1", "l1_weight": x}``), at any depth.

    A key set twice (by a branch and beside it) is a :class:`ContractError` when ``strict`` (a
    trial must not guess which one its search meant); otherwise the innermost value wins, which
    is the one the chosen branch gave (storage reading a record never raises).
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and "_name" in value:
            inner = flatten_nested({k: v for k, v in value.items() if k != "_name"}, strict=strict)
            pairs = [(key, value["_name"]), *inner.items()]
        else:
            pairs = [(key, value)]
        for k, v in pairs:
            if strict and k in flat:
                raise ContractError(f"parameter {k!r} is set twice")
            flat[k] = v
    return flat


# ---------------------------------------------------------------- trial command <-> flags
#: ``python -m trials.<entry>``: the trial entries this project runs; ``python -m trials.warm
#: <entry>`` runs the same entry through a warm server (trials/warm.py), with the same flags.
ENTRY_MODULE = re.compile(r"^trials\.(\w+)$")
WARM_MODULE = "trials.warm"


def flag_of(key: str) -> str:
    """The command-line flag of a parameter: ``lambda_4`` -> ``--lambda-4``."""
    return "--" + key.replace("_", "-")


def key_of(flag: str) -> str:
    """The parameter of a flag (``--lambda-4`` or ``lambda-4``) -> ``lambda_4``."""
    return flag.removeprefix("--").replace("-", "_")


def entry_command(
    entry: str, params: Mapping[str, Any], python: str = "python", warm: bool = False
) -> str:
    """The command that runs trial entry ``entry`` with ``params`` as flags (shell-quoted); with
    ``warm``, through the warm launcher (``python -m trials.warm <entry> ...``)."""
    argv = [python, "-m", WARM_MODULE, entry] if warm else [python, "-m", f"trials.{entry}"]
    for key, value in params.items():
        argv += [flag_of(key), str(value)]
    return shlex.join(argv)


#: Bounds on a stored trial command before it is parsed: shlex's split is quadratic in a long
#: token (a 0.9 MB one took 13 s), and every flag becomes a configuration key of every trial.
#: Our own commands are a few hundred characters with a few dozen flags.
MAX_COMMAND_CHARS = 16_384
MAX_COMMAND_FLAGS = 256


def command_entry(argv: Sequence[str]) -> str | None:
    """The entry that ``-m trials.<entry> ...`` or ``-m trials.warm <entry> ...`` (a command's
    words after the interpreter) runs, else None."""
    if len(argv) < 2 or argv[0] != "-m":
        return None
    if argv[1] == WARM_MODULE:
        return argv[2] if len(argv) > 2 and re.fullmatch(r"\w+", argv[2]) else None
    m = ENTRY_MODULE.match(argv[1])
    return m.group(1) if m else None


def parse_command(command: str | None) -> dict[str, Any]:
    """The flags of a trial command as parameters: ``python -m trials.mlp --model mlp4
    --lambda-4 2`` (or ``python -m trials.warm mlp --model mlp4 --lambda-4 2``) -> {"entry":
    "mlp", "model": "mlp4", "lambda_4": "2"} (values as text).

    Never raises: a command that is not ours gives what can be read of it (unbalanced quotes fall
    back to white space); one over ``MAX_COMMAND_CHARS`` gives nothing, and flags beyond
    ``MAX_COMMAND_FLAGS`` are not read."""
    if not command or len(command) > MAX_COMMAND_CHARS:
        return {}
    try:
        argv = shlex.split(command)
    except ValueError:
        argv = command.split()
    flags: dict[str, Any] = {}
    for i, arg in enumerate(argv):
        if arg == "-m" and (entry := command_entry(argv[i:])):
            flags[ENTRY] = entry
        if not arg.startswith("--") or len(arg) == 2:
            continue
        if len(flags) >= MAX_COMMAND_FLAGS:
            break
        name, sep, value = arg[2:].partition("=")
        if not sep:
            if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                continue
            value = argv[i + 1]
        flags[key_of(name)] = value
    return flags


# ---------------------------------------------------------------- what took effect
@dataclass(frozen=True)
class Strengths:
    """What regularized a trial, read from its effective configuration."""

    family: str  # vanilla, nsr or a baseline's name (``family_of``); "unknown" if unreadable
    lambdas: dict[int, float] = field(default_factory=dict)  # NSR's λ per regularized layer
    strength: float | None = None  # a baseline's strength (L1, L2, Jacobian, VCL)
    #: The other keys that change the result (budget, model knobs), without seed and identity.
    other: dict[str, Any] = field(default_factory=dict)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


_NOT_OTHER = frozenset({LAYERS, SEED, REGULARIZER, MODEL, DATASET, ENTRY, *STRENGTH_KEYS.values()})


def effective_strengths(config: Mapping[str, Any]) -> Strengths:
    """Which λ or strength took effect in a trial, from its *effective* configuration (what it
    reported, or NNI's parameters flattened over its command's flags): NSR's λ of the layers in
    ``layers`` only (the λ of another layer changed nothing), a baseline's strength only under
    that baseline. The one rule behind the plots, the importance and the confirmation plans."""
    config = flatten_nested(config, strict=False)
    try:
        layers = parse_layers(config.get(LAYERS))
    except ContractError:
        return Strengths(family="unknown", other=_other(config))
    regularizer = str(config.get(REGULARIZER) or NSR).lower()
    family = family_of(regularizer, layers)
    lambdas: dict[int, float] = {}
    if family == NSR:
        for k in layers:
            lam = _finite(config.get(lambda_key(k)))
            if lam is not None:
                lambdas[k] = lam
    key = STRENGTH_KEYS.get(family)
    strength = _finite(config.get(key)) if key else None
    return Strengths(family=family, lambdas=lambdas, strength=strength, other=_other(config))


def _other(config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in config.items()
        if k not in _NOT_OTHER and k not in RUNTIME_KEYS and not LAMBDA_KEY.match(k)
    }
