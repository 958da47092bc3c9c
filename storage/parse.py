"""Turn NNI's raw records into our rows, following the trial contract (DESIGN.md, NNI contract):
model/dataset from the trial command (parameters win), ``layers`` + ``lambda_<k>`` → effective λ,
final-metric dict → numeric columns and per-layer variance rows. Never raises on bad data: what
does not fit the contract is kept as it was (``final_raw``)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shlex
from dataclasses import dataclass
from typing import Any

import orjson

from storage.nni_reader import RawExperiment, RawTrial

_VAR_KEY = re.compile(r"^var_(\d+)(_init)?$")
_LAMBDA_KEY = re.compile(r"^lambda_(\d+)$")


@dataclass
class CommandInfo:
    model: str | None = None
    dataset: str | None = None
    seed: int | None = None


def parse_trial_command(command: str | None) -> CommandInfo:
    """``--model X --dataset Y --seed N`` (or ``--model=X``) of a trial command."""
    info = CommandInfo()
    if not command:
        return info
    try:
        argv = shlex.split(command)
    except ValueError:  # unbalanced quotes: fall back to whitespace
        argv = command.split()
    values: dict[str, str] = {}
    for i, arg in enumerate(argv):
        for flag in ("--model", "--dataset", "--seed"):
            if arg == flag and i + 1 < len(argv):
                values[flag] = argv[i + 1]
            elif arg.startswith(flag + "="):
                values[flag] = arg.split("=", 1)[1]
    info.model = values.get("--model")
    info.dataset = values.get("--dataset")
    try:
        info.seed = int(values["--seed"]) if "--seed" in values else None
    except ValueError:
        info.seed = None
    return info


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


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        f = float(value)
    except OverflowError:  # an int beyond a double
        return None
    return f if math.isfinite(f) else None


def parse_layers(value: Any) -> tuple[str, list[int] | None]:
    """Normalized ``layers`` string and its indices; ``(raw, None)`` when it is not parseable."""
    if value is None:
        return "none", []
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), [value]
    text = str(value).strip()
    if text.lower() in ("none", ""):
        return "none", []
    try:
        idx = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        return text, None
    if not idx or min(idx) < 1:
        return text, None
    return ",".join(map(str, idx)), idx


def _json_safe(value: Any) -> Any:
    """Parameters go into a JSON column: PostgreSQL rejects NaN/Infinity, so store them as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


_DIGEST_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _digest(obj: Any) -> str:
    # orjson: the fingerprints serialize every trial (its whole curve included), and
    # json.dumps(sort_keys=True) was the largest single cost of the ingest.
    try:
        data = orjson.dumps(obj, option=_DIGEST_OPTS, default=str)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an int beyond 64 bits
        data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha1(data).hexdigest()


def effective_parameters(
    params: dict[str, Any], layer_idx: list[int] | None | bool = False
) -> dict[str, Any]:
    """Parameters without ``seed`` and without the λ of layers that are not regularized (they
    have no effect): what identifies a configuration across seeds. ``layer_idx``: the parsed
    ``layers`` when the caller has it (False: parse it here)."""
    if layer_idx is False:
        layer_idx = parse_layers(params.get("layers"))[1]
    active = set(layer_idx or [])
    kept = {}
    for k, v in params.items():
        if k == "seed":
            continue
        m = _LAMBDA_KEY.match(k)
        if m and layer_idx is not None and int(m.group(1)) not in active:
            continue
        kept[k] = v
    return kept


def config_key(params: dict[str, Any], layer_idx: list[int] | None | bool = False) -> str:
    return _digest(effective_parameters(params, layer_idx))


@dataclass
class ParsedExperiment:
    row: dict[str, Any]
    trials: list[tuple[dict[str, Any], list[dict[str, Any]]]]  # (trial row, layer rows)


def parse_experiment(raw: RawExperiment) -> ParsedExperiment:
    config = raw.config or {}
    command = config.get("trialCommand")
    if command is None and isinstance(config.get("trial"), dict):  # v1 config layout
        command = config["trial"].get("command")
    cmd = parse_trial_command(command)
    row = {
        "nni_id": raw.nni_id,
        "name": raw.name,
        "model": cmd.model,
        "dataset": cmd.dataset,
        "trial_command": command,
        "search_space": _json_safe(config.get("searchSpace")),
        "config": _json_safe(config),
        "status": raw.status,
        "start_time": raw.start_time,
        "end_time": raw.end_time,
        "source": raw.source,
        "source_stamp": raw.source_stamp,
    }
    row["fingerprint"] = _digest({k: v for k, v in row.items() if k != "source_stamp"})
    trials = [parse_trial(t, cmd) for t in raw.trials]
    return ParsedExperiment(row=row, trials=trials)


def parse_trial(raw: RawTrial, cmd: CommandInfo) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    params = _json_safe(dict(raw.parameters))
    model = params.get("model", cmd.model)
    dataset = params.get("dataset", cmd.dataset)
    model = str(model) if model is not None else None
    dataset = str(dataset) if dataset is not None else None
    layers, layer_idx = parse_layers(params.get("layers"))
    seed_value = params.get("seed", cmd.seed if cmd.seed is not None else 0)
    try:
        seed: int | None = int(seed_value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        seed = None
    regularizer = params.get("regularizer")

    final_metrics: dict[str, float] | None = None
    final_raw: str | None = None
    val_error = test_error = epoch_seconds = None
    best_epoch: int | None = None
    if raw.final is not None:
        decoded = decode_metric(raw.final)
        if isinstance(decoded, dict):
            final_metrics = {
                str(k): f for k, v in decoded.items() if (f := _finite(v)) is not None
            }
            val_error = final_metrics.get("default")
            test_error = final_metrics.get("test_error")
            epoch_seconds = final_metrics.get("epoch_seconds")
            be = final_metrics.get("best_epoch")
            best_epoch = int(be) if be is not None else None
            if val_error is None:  # a dict without a numeric "default" breaks the contract
                final_raw = str(raw.final)
        else:
            final_raw = str(raw.final)
            # A bare number is NNI's "default" metric: keep ranking it as NNI would.
            val_error = _finite(decoded)
            if val_error is not None:
                final_metrics = {"default": val_error}

    intermediate: list[float | None] = []
    for text in raw.intermediate:
        v = decode_metric(text)
        if isinstance(v, dict):
            v = v.get("default")
        intermediate.append(_finite(v))

    n_layers = len(layer_idx) if layer_idx is not None else -1
    reg = str(regularizer).lower() if regularizer is not None else "nsr"
    if n_layers < 0:
        family = "unknown"
    elif reg != "nsr":
        family = reg
    else:
        family = "nsr" if n_layers > 0 else "vanilla"
    trial = {
        "trial_job_id": raw.trial_job_id,
        "sequence_id": raw.sequence_id,
        "model": model,
        "dataset": dataset,
        "status": raw.status,
        "parameters": params,
        "config_key": config_key(params, layer_idx),
        "layers": layers,
        "n_layers": n_layers,
        "family": family,
        "regularizer": str(regularizer) if regularizer is not None else None,
        "seed": seed,
        "val_error": val_error,
        "test_error": test_error,
        "best_epoch": best_epoch,
        "epoch_seconds": epoch_seconds,
        "final_metrics": final_metrics,
        "final_raw": final_raw,
        "intermediate": intermediate,
        "start_time": raw.start_time,
        "end_time": raw.end_time,
    }
    trial["fingerprint"] = _digest(trial)
    return trial, layer_rows(params, layer_idx, final_metrics, trial)


def layer_rows(
    params: dict[str, Any],
    layer_idx: list[int] | None,
    final: dict[str, float] | None,
    trial: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per layer the trial says anything about (in ``layers``, a λ, or a variance)."""
    ks: set[int] = set(layer_idx or [])
    for key in params:
        if m := _LAMBDA_KEY.match(key):
            ks.add(int(m.group(1)))
    for key in final or {}:
        if m := _VAR_KEY.match(key):
            ks.add(int(m.group(1)))
    active = set(layer_idx or [])
    rows = []
    for k in sorted(ks):
        if layer_idx is None:
            lam = None  # unparseable "layers": the effective λ is unknown
        elif k in active:
            lam = _finite(params.get(f"lambda_{k}"))
            if lam is None and isinstance(params.get(f"lambda_{k}"), str):
                try:
                    lam = float(params[f"lambda_{k}"])
                except ValueError:
                    lam = None
        else:
            lam = 0.0
        rows.append(
            {
                "layer": k,
                "lam": lam,
                "var_init": (final or {}).get(f"var_{k}_init"),
                "var_end": (final or {}).get(f"var_{k}"),
                "model": trial["model"],
                "dataset": trial["dataset"],
                "family": trial["family"],
                "val_error": trial["val_error"],
            }
        )
    return rows
