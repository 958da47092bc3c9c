"""NNI's records as plain data, whatever source they come from (the registry, a manager's REST
API, an experiment's nni.sqlite), and the decoding both readers share."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from storage.limits import clean_json

# An int for most tuners; Hyperband's is text, "<bracket>_<round>_<index>" (e.g. "0-4_1_3").
ParameterId = int | str
MAX_ID_CHARS = 64
ParameterSets = dict[ParameterId, dict[str, Any]]  # every set NNI handed out, by its id


@dataclass
class RegistryEntry:
    nni_id: str
    port: int | None
    status: str
    name: str | None
    log_dir: str | None
    prefix_url: str | None
    start_time: int | None
    end_time: int | None


@dataclass
class RawTrial:
    trial_job_id: str
    status: str
    sequence_id: int | None
    parameters: dict[str, Any]
    start_time: int | None
    end_time: int | None
    final: str | None = None  # NNI's stored text of the first FINAL metric
    intermediate: list[str] = field(default_factory=list)  # stored text, in sequence order
    parameter_id: ParameterId | None = None  # the parameter set NNI's trial record names
    reported_parameter_id: ParameterId | None = None  # the set the trial's own metrics name


@dataclass
class RawExperiment:
    nni_id: str
    name: str | None
    status: str
    config: dict[str, Any]
    start_time: int | None
    end_time: int | None
    source: str
    source_stamp: str | None
    trials: list[RawTrial]


def parameter_id(value: Any) -> ParameterId | None:
    """NNI's id of a parameter set: an int for most tuners, text for Hyperband ("0-4_1_3")."""
    number = int_or_none(value)
    if number is not None:
        return number
    if isinstance(value, str) and value and value != "N/A" and len(value) <= MAX_ID_CHARS:
        return value
    return None


def int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None and value != "N/A" else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        return None


def hyper_parameters(text: str | None) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return clean_json(value) if isinstance(value, dict) else None


def text_commands(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its trial command as text whatever the file holds there (the command is
    parsed for --model/--dataset/--seed; NNI itself only accepts a string)."""
    if "trialCommand" in config and not isinstance(config["trialCommand"], str | None):
        config = {**config, "trialCommand": json.dumps(config["trialCommand"], default=str)}
    trial = config.get("trial")
    if isinstance(trial, dict) and not isinstance(trial.get("command"), str | None):
        command = json.dumps(trial["command"], default=str)
        config = {**config, "trial": {**trial, "command": command}}
    return config


def text_value(value: Any) -> str | None:
    """A column NNI declares as text, whatever the file holds in it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def attach_metrics(trials: dict[str, RawTrial], metrics: Any) -> None:
    """``metrics``: (trial job id, parameter id, type, sequence, data) in arrival order."""
    periodic: dict[str, list[tuple[int, str]]] = {}
    for job_id, pid, mtype, sequence, data in metrics:
        trial = trials.get(job_id)
        if trial is None:
            continue
        if trial.reported_parameter_id is None:
            trial.reported_parameter_id = parameter_id(pid)
        if mtype == "FINAL":
            if trial.final is None:  # NNI, too, keeps the first FINAL
                trial.final = data
        elif mtype == "PERIODICAL":
            periodic.setdefault(job_id, []).append((int_or_none(sequence) or 0, data))
    for job_id, items in periodic.items():
        items.sort(key=lambda it: it[0])  # stable: ties keep arrival order
        trials[job_id].intermediate = [d for _, d in items]
