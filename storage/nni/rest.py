"""A running experiment through its NNI manager's REST API."""

from __future__ import annotations

import httpx

from storage.errors import SourceError
from storage.nni.reconcile import reconcile_parameters, start_with
from storage.nni.records import (
    ParameterSets,
    RawExperiment,
    RawTrial,
    RegistryEntry,
    attach_metrics,
    int_or_none,
    text_commands,
)


def _rest_base(port: int, prefix: str | None) -> str:
    parts = [f"http://127.0.0.1:{port}", prefix or "", "api/v1/nni"]
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def rest_alive(entry: RegistryEntry, timeout: float = 1.0) -> str | None:
    """The manager's status (``check-status``) or None when nothing answers on its port."""
    if entry.port is None:
        return None
    try:
        resp = httpx.get(f"{_rest_base(entry.port, entry.prefix_url)}/check-status",
                         timeout=timeout)
        resp.raise_for_status()
        return str(resp.json().get("status", "RUNNING"))
    except (httpx.HTTPError, ValueError):
        return None


def read_rest(entry: RegistryEntry, status: str, timeout: float = 10.0) -> RawExperiment:
    """A running experiment through its manager's REST API."""
    assert entry.port is not None
    base = _rest_base(entry.port, entry.prefix_url)
    try:
        with httpx.Client(timeout=timeout) as client:
            profile = client.get(f"{base}/experiment").raise_for_status().json()
            jobs = client.get(f"{base}/trial-jobs").raise_for_status().json()
            metrics = client.get(f"{base}/metric-data").raise_for_status().json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SourceError(f"NNI manager on port {entry.port} did not answer: {exc}") from exc
    trials: dict[str, RawTrial] = {}
    sets: ParameterSets = {}
    for job in jobs:
        trial = RawTrial(
            trial_job_id=job["trialJobId"],
            status=str(job.get("status", "UNKNOWN")),
            sequence_id=int_or_none(job.get("sequenceId")),
            parameters={},
            start_time=int_or_none(job.get("startTime")),
            end_time=int_or_none(job.get("endTime")),
        )
        hps = job.get("hyperParameters") or []
        if hps:
            start_with(trial, hps[0], sets)
        trials[trial.trial_job_id] = trial
    attach_metrics(
        trials,
        (
            (m.get("trialJobId"), m.get("parameterId"), m.get("type"), m.get("sequence"),
             m.get("data"))
            for m in metrics
        ),
    )  # fmt: skip
    reconcile_parameters(trials, sets)
    config = profile.get("params") or {}
    config = text_commands(config) if isinstance(config, dict) else {}
    return RawExperiment(
        nni_id=profile.get("id") or entry.nni_id,
        name=config.get("experimentName") or entry.name,
        status=status,
        config=config,
        start_time=int_or_none(profile.get("startTime")) or entry.start_time,
        end_time=int_or_none(profile.get("endTime")),
        source="rest",
        source_stamp=None,
        trials=list(trials.values()),
    )
