"""Turn NNI's raw records into our rows, following the trial contract (``trials/contract.py``).

A trial's configuration comes, in this order, from:
1. its final report's ``config`` (what the trial says it trained with: the source of truth),
2. NNI's parameters over the flags of the trial command (a running trial, or one that failed
   before reporting: the parameters are the set the trial's own metrics name),
3. the command line alone (a foreign trial that NNI gave no parameters).
From the configuration: ``layers`` and the effective λ, the regularizer family, the seed, and the
training budget. Never raises on bad data: what does not fit the contract is kept as it was
(``final_raw``, ``family='unknown'``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import orjson

from storage.limits import clean_json, finite_float
from storage.nni.records import RawExperiment, RawTrial
from storage.schemas import confirmed_searches
from trials import contract

CONFIG_FROM_REPORT = contract.CONFIG_FROM_REPORT
CONFIG_FROM_PARAMETERS = "parameters"
CONFIG_FROM_COMMAND = "command"
UNKNOWN_BUDGET = "unknown"  # a foreign trial that names none of the budget keys
# Multi-fidelity algorithms and the class argument that is their full budget (in epochs here):
# a trial they ran on less is that search's partial trial, like an early-stopped one.
FULL_BUDGET_ARG = {"Hyperband": "R", "BOHB": "max_budget"}


def decode_metric(text: Any) -> Any:
    """NNI stores a metric as JSON text, usually a JSON string holding JSON: unwrap both."""
    if isinstance(text, str) and len(text) > 2 and text[0] == '"' and text[-1] == '"':
        # Fast path for the common per-epoch '"12.5"' (two json.loads per value add up
        # to a third of the ingest time).
        try:
            return float(text[1:-1])
        except ValueError:
            pass
    value = text
    for _ in range(3):
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: nested beyond ~1000 levels
            break
    return value


def _number(value: Any) -> float | None:
    """A finite number from a number or numeric text (command flags are text)."""
    if isinstance(value, str):
        try:
            return finite_float(float(value))
        except ValueError:
            return None
    return finite_float(value)


def _integer(value: Any) -> int | None:
    """An integer as it is (a 64-bit seed must not go through a double), from an int, an
    integral float or integer text; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def parse_layers(value: Any) -> tuple[str, list[int] | None]:
    """Normalized ``layers`` string and its indices; ``(raw text, None)`` when it is not
    parseable without the model (``"last"``, junk)."""
    try:
        idx = contract.parse_layers(value)
    except contract.ContractError:
        return str(value), None
    return contract.format_layers(idx), idx


_DIGEST_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _digest(obj: Any) -> str:
    # orjson: the fingerprints serialize every trial (its whole curve included), and
    # json.dumps(sort_keys=True) was the largest single cost of the ingest.
    try:
        data = orjson.dumps(obj, option=_DIGEST_OPTS, default=str)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an int beyond 64 bits
        data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha1(data).hexdigest()


def _canonical_values(config: dict[str, Any]) -> dict[str, Any]:
    """Numbers as numbers (a flag's "0.1" and a report's 0.1 are the same configuration)."""
    out = {}
    for k, v in config.items():
        if isinstance(v, str) and k not in (contract.LAYERS, contract.MODEL, contract.DATASET):
            n = _number(v)
            if n is not None:
                v = int(n) if n.is_integer() and "." not in v and "e" not in v.lower() else n
        out[k] = v
    return out


def config_key(config: dict[str, Any]) -> str:
    return _digest(contract.config_identity(_canonical_values(config)))


def trial_config(
    params: dict[str, Any], flags: dict[str, Any], final: Any
) -> tuple[dict[str, Any], str]:
    """(configuration, where it came from): the report's, else parameters over command flags."""
    if isinstance(final, dict) and isinstance(final.get(contract.CONFIG), dict):
        return clean_json(final[contract.CONFIG]), CONFIG_FROM_REPORT
    merged = {**flags, **contract.flatten_nested(params, strict=False)}
    source = CONFIG_FROM_PARAMETERS if params else CONFIG_FROM_COMMAND
    return _canonical_values(clean_json(merged)), source


@dataclass
class ParsedExperiment:
    row: dict[str, Any]
    trials: list[tuple[dict[str, Any], list[dict[str, Any]]]]  # (trial row, layer rows)


class DeadlinePassed(Exception):
    """An import's deadline passed while it was being parsed or stored (nothing is kept)."""


def parse_experiment(raw: RawExperiment, deadline: float | None = None) -> ParsedExperiment:
    config = raw.config or {}
    command = config.get("trialCommand")
    if command is None and isinstance(config.get("trial"), dict):  # v1 config layout
        command = config["trial"].get("command")
    flags = contract.parse_command(command)
    confirms = confirmed_searches(raw.name)
    full_epochs = full_budget_epochs(config)
    row = {
        "nni_id": raw.nni_id,
        "name": raw.name,
        "model": _text(flags.get(contract.MODEL)),
        "dataset": _text(flags.get(contract.DATASET)),
        "trial_command": command,
        "search_space": clean_json(config.get("searchSpace")),
        "config": clean_json(config),
        "status": raw.status,
        "role": "confirmation" if confirms is not None else "search",
        "confirms": confirms,
        "start_time": raw.start_time,
        "end_time": raw.end_time,
        "source": raw.source,
        "source_stamp": raw.source_stamp,
    }
    row["fingerprint"] = _digest({k: v for k, v in row.items() if k != "source_stamp"})
    trials = []
    for i, t in enumerate(raw.trials):
        if deadline is not None and i % 1000 == 0 and time.monotonic() > deadline:
            raise DeadlinePassed(f"parsing stopped after {i} of {len(raw.trials)} trials")
        trials.append(parse_trial(t, flags, full_epochs))
    return ParsedExperiment(row=row, trials=trials)


def full_budget_epochs(config: dict[str, Any]) -> float | None:
    """The full budget, in epochs, of a search run by a multi-fidelity algorithm, else None.

    Hyperband and BOHB hand their trials ``TRIAL_BUDGET`` epochs up to ``R`` (``max_budget``);
    ours is named by class (``advisors.hyperband.Hyperband``), NNI's by name, v1 configs by
    ``builtinAdvisorName``."""
    for role in ("advisor", "tuner"):
        algo = config.get(role)
        if not isinstance(algo, dict):
            continue
        name = algo.get("name") or algo.get("builtinAdvisorName") or algo.get("builtinTunerName")
        name = name or str(algo.get("className") or "").rpartition(".")[2]
        arg = FULL_BUDGET_ARG.get(str(name))
        args = algo.get("classArgs")
        if arg is None or not isinstance(args, dict):
            continue
        value = finite_float(args.get(arg))
        if value is not None and value > 0:
            return value
    return None


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def _final(raw: RawTrial) -> tuple[dict[str, float] | None, str | None, Any]:
    """(numeric final metrics, NNI's text when it broke the contract, the decoded value)."""
    if raw.final is None:
        return None, None, None
    decoded = decode_metric(raw.final)
    if isinstance(decoded, dict):
        metrics = {str(k): f for k, v in decoded.items() if (f := finite_float(v)) is not None}
        # A dict without a numeric "default" breaks the contract: keep NNI's text too.
        return metrics, (str(raw.final) if contract.DEFAULT not in metrics else None), decoded
    # A bare number is NNI's "default" metric: keep ranking it as NNI would.
    value = finite_float(decoded)
    return ({contract.DEFAULT: value} if value is not None else None), str(raw.final), decoded


def parse_trial(
    raw: RawTrial, flags: dict[str, Any], full_epochs: float | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    params = clean_json(dict(raw.parameters))
    final_metrics, final_raw, decoded = _final(raw)
    config, config_source = trial_config(params, flags, decoded)
    layers, layer_idx = (
        parse_layers(config[contract.LAYERS])
        if contract.LAYERS in config
        else ("unknown", None)  # neither the trial, NNI nor the command says: never "vanilla"
    )
    seed = _integer(config.get(contract.SEED))
    regularizer = _text(config.get(contract.REGULARIZER))
    family = "unknown" if layer_idx is None else contract.family_of(regularizer, layer_idx)

    metrics = final_metrics or {}
    val_error = metrics.get(contract.DEFAULT)
    intermediate: list[float | None] = []
    for text in raw.intermediate:
        v = decode_metric(text)
        if isinstance(v, dict):
            v = v.get(contract.DEFAULT)
        intermediate.append(finite_float(v))
    epochs = _number(config.get("epochs"))
    epochs_run = metrics.get(contract.EPOCHS_RUN)
    if epochs_run is None and raw.status == "EARLY_STOPPED":
        epochs_run = float(len(intermediate))
    # A multi-fidelity search's trial on fewer epochs than the search's full budget: ranked (and
    # keyed) with that budget as partial, as an early-stopped trial is; its config says what ran.
    ranked = config
    if full_epochs is not None and epochs is not None and epochs < full_epochs:
        # 27, not 27.0: the budget text and configuration key of a trial reporting "epochs": 27.
        full = int(full_epochs) if float(full_epochs).is_integer() else full_epochs
        ranked = {**config, "epochs": full}
        epochs_run = epochs if epochs_run is None else epochs_run
        epochs = full
    # Partial: not a full-budget result (stopped early, or fewer epochs than the budget).
    partial = raw.status != "SUCCEEDED" or (
        epochs is not None and epochs_run is not None and epochs_run < epochs
    )
    if val_error is None and raw.status == "EARLY_STOPPED":
        finite = [v for v in intermediate if v is not None]
        val_error = min(finite) if finite else None  # best so far, ranked only when asked
    be = metrics.get(contract.BEST_EPOCH)
    trial = {
        "trial_job_id": raw.trial_job_id,
        "sequence_id": raw.sequence_id,
        "model": _text(config.get(contract.MODEL)),
        "dataset": _text(config.get(contract.DATASET)),
        "status": raw.status,
        "parameters": params,
        "config": config,
        "config_source": config_source,
        "config_key": config_key(ranked),
        "budget": contract.budget_of(_canonical_values(ranked)) or UNKNOWN_BUDGET,
        "partial": partial,
        "epochs_run": int(epochs_run) if epochs_run is not None else None,
        "layers": layers,
        "n_layers": len(layer_idx) if layer_idx is not None else -1,
        "family": family,
        "regularizer": regularizer,
        "seed": seed,
        "val_error": val_error,
        "test_error": metrics.get(contract.TEST_ERROR),
        "best_epoch": int(be) if be is not None else None,
        "epoch_seconds": metrics.get(contract.EPOCH_SECONDS),
        "final_metrics": final_metrics,
        "final_raw": final_raw,
        "intermediate": intermediate,
        "start_time": raw.start_time,
        "end_time": raw.end_time,
    }
    trial["fingerprint"] = _digest(trial)
    return trial, layer_rows(config, layer_idx, final_metrics, trial)


def layer_rows(
    config: dict[str, Any],
    layer_idx: list[int] | None,
    final: dict[str, float] | None,
    trial: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per layer the trial says anything about (in ``layers``, a λ, or a variance)."""
    ks: set[int] = set(layer_idx or [])
    for key in config:
        if m := contract.LAMBDA_KEY.match(key):
            ks.add(int(m.group(1)))
    for key in final or {}:
        if m := contract.VAR_KEY.match(key):
            ks.add(int(m.group(1)))
    active = set(layer_idx or [])
    nsr = trial["family"] == contract.NSR
    rows = []
    for k in sorted(ks):
        if layer_idx is None:
            lam = None  # unparseable "layers": the effective λ is unknown
        elif k in active and nsr:
            lam = _number(config.get(contract.lambda_key(k)))
        else:
            lam = 0.0
        rows.append(
            {
                "layer": k,
                "lam": lam,
                "var_init": (final or {}).get(contract.var_init_key(k)),
                "var_end": (final or {}).get(contract.var_key(k)),
            }
        )
    return rows
