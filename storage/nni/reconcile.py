"""Which parameter set each trial really trained with: NNI's records of the sets it handed out,
and the workaround for NNI 3.0 handing two trials started together each other's set."""

from __future__ import annotations

from typing import Any

from storage.nni.records import (
    ParameterId,
    ParameterSets,
    RawTrial,
    hyper_parameters,
    parameter_id,
)


def _parameters_of(hparam: dict[str, Any] | None) -> dict[str, Any]:
    if not hparam:
        return {}
    params = hparam.get("parameters", {})
    return params if isinstance(params, dict) else {"value": params}


def start_with(trial: RawTrial, record: Any, sets: ParameterSets) -> None:
    """Record the parameter set NNI says ``trial`` was started with (and every set by its id);
    ``record`` is NNI's JSON text of it, as stored, and anything that is not a JSON object is
    passed over."""
    hparam = hyper_parameters(record)
    if hparam is None:
        return
    params = _parameters_of(hparam)
    pid = parameter_id(hparam.get("parameter_id"))
    if pid is not None:
        sets.setdefault(pid, params)
    if not trial.parameters:  # the first set is the one the trial was started with
        trial.parameters = params
        trial.parameter_id = pid


def reconcile_parameters(trials: dict[str, RawTrial], sets: ParameterSets) -> None:
    """Give each trial the parameter set it really trained with.

    NNI 3.0's local training service can hand two trials started together each other's
    parameter set: the trial job's record names one set while the trial process receives the
    other, trains with it and reports its metrics under that set's id (seen here in a third of
    the trials of searches with trialConcurrency 2). The id in the metrics is the truth. A trial
    without metrics whose recorded set was reported by another trial got that trial's recorded
    set: the two swapped.
    """
    claimed = {t.reported_parameter_id: t for t in trials.values()
               if t.reported_parameter_id is not None}  # fmt: skip
    actual: dict[str, ParameterId] = {}
    for t in trials.values():
        if t.reported_parameter_id is not None:
            actual[t.trial_job_id] = t.reported_parameter_id
            continue
        partner = claimed.get(t.parameter_id) if t.parameter_id is not None else None
        if partner is not None and partner.parameter_id not in claimed:
            actual[t.trial_job_id] = partner.parameter_id  # type: ignore[assignment]
    for t in trials.values():
        pid = actual.get(t.trial_job_id)
        if pid is not None and pid != t.parameter_id and pid in sets:
            t.parameters, t.parameter_id = sets[pid], pid
