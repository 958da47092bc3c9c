"""Read NNI experiments into plain records: the registry, a running manager's REST API, or a
stopped experiment's ``db/nni.sqlite`` (opened read-only, no NNI process needed).

Both sources yield the same ``RawExperiment`` so ingest has one code path. The replay of
``TrialJobEvent`` rows follows NNI's own ``NNIDataStore.getTrialJobsByReplayEvents``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from storage.errors import SourceError

TERMINAL_EVENTS = {"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"}


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
    parameter_id: int | None = None  # the parameter set NNI's trial record names
    reported_parameter_id: int | None = None  # the set the trial's own metrics name


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


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "N/A" else None
    except (TypeError, ValueError):
        return None


def read_registry(nni_dir: Path) -> list[RegistryEntry]:
    """Experiments listed in ``<nni_dir>/.experiment``; an absent file means none."""
    path = Path(nni_dir) / ".experiment"
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read NNI registry {path}: {exc}") from exc
    entries = []
    for key, item in data.items():
        if not isinstance(item, dict):  # very old nnictl wrote lists; nnictl itself drops them
            continue
        entries.append(
            RegistryEntry(
                nni_id=str(item.get("id", key)),
                port=_int_or_none(item.get("port")),
                status=str(item.get("status", "UNKNOWN")),
                name=item.get("experimentName"),
                log_dir=item.get("logDir") or None,
                prefix_url=item.get("prefixUrl") or None,
                start_time=_int_or_none(item.get("startTime")),
                end_time=_int_or_none(item.get("endTime")),
            )
        )
    return entries


def experiment_db_path(entry: RegistryEntry, nni_dir: Path) -> Path:
    """``<logDir>/<id>/db/nni.sqlite``; logDir defaults to the NNI directory itself. A logDir
    that does not exist here falls back to the NNI directory: the registry holds the paths of the
    machine that ran NNI, which differ where the directory is mounted elsewhere (a container)."""
    if entry.log_dir and (Path(entry.log_dir) / entry.nni_id).exists():
        base = Path(entry.log_dir)
    else:
        base = Path(nni_dir)
    return base / entry.nni_id / "db" / "nni.sqlite"


# Part of every source stamp: raise it when the reader changes what it makes of the same file, so
# that the next sync reads stopped experiments again (2: trials' parameters from their metrics).
READER_VERSION = 2


def source_stamp(db_path: Path) -> str | None:
    """Size and mtime of nni.sqlite and its WAL (changes whenever NNI writes), and the reader's
    version."""
    parts = []
    for p in (db_path, Path(str(db_path) + "-wal")):
        try:
            st = p.stat()
        except OSError:
            continue
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return f"r{READER_VERSION}|" + "|".join(parts) if parts else None


def _hyper_parameters(text: str | None) -> dict[str, Any] | None:
    if not text or not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _parameters_of(hparam: dict[str, Any] | None) -> dict[str, Any]:
    if not hparam:
        return {}
    params = hparam.get("parameters", {})
    return params if isinstance(params, dict) else {"value": params}


def _start_with(trial: RawTrial, hparam: dict[str, Any], sets: dict[int, dict[str, Any]]) -> None:
    """Record the parameter set NNI says ``trial`` was started with (and every set by its id)."""
    params = _parameters_of(hparam)
    pid = _int_or_none(hparam.get("parameter_id"))
    if pid is not None:
        sets.setdefault(pid, params)
    if not trial.parameters:  # the first set is the one the trial was started with
        trial.parameters = params
        trial.parameter_id = pid


def reconcile_parameters(trials: dict[str, RawTrial], sets: dict[int, dict[str, Any]]) -> None:
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
    actual: dict[str, int] = {}
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


def read_sqlite(db_path: Path, entry: RegistryEntry | None = None) -> RawExperiment:
    """A stopped (or running) experiment from its nni.sqlite, opened read-only."""
    if not db_path.exists():
        raise SourceError(f"no NNI database at {db_path}")
    stamp = source_stamp(db_path)
    uri = f"file:{db_path}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open {db_path} read-only: {exc}") from exc
    try:
        profile = conn.execute(
            "SELECT params, id, startTime, endTime FROM ExperimentProfile "
            "ORDER BY revision DESC LIMIT 1"
        ).fetchone()
        events = conn.execute(
            "SELECT trialJobId, event, data, sequenceId, timestamp FROM TrialJobEvent "
            "ORDER BY rowid"
        ).fetchall()
        metrics = conn.execute(
            "SELECT trialJobId, parameterId, type, sequence, data FROM MetricData ORDER BY rowid"
        ).fetchall()
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read {db_path}: {exc}") from exc
    finally:
        conn.close()

    config: dict[str, Any] = {}
    nni_id = entry.nni_id if entry else db_path.parent.parent.name
    start = end = None
    if profile is not None:
        try:
            config = json.loads(profile[0]) or {}
        except ValueError:
            config = {}
        nni_id = profile[1] or nni_id
        start, end = _int_or_none(profile[2]), _int_or_none(profile[3])

    trials: dict[str, RawTrial] = {}
    sets: dict[int, dict[str, Any]] = {}
    for job_id, event, data, seq_id, ts in events:
        if not job_id:
            continue
        trial = trials.get(job_id)
        if trial is None:
            trial = RawTrial(job_id, "UNKNOWN", None, {}, None, None)
            trials[job_id] = trial
        if event == "RUNNING" and ts is not None:
            trial.start_time = int(ts)
        elif trial.start_time is None and ts is not None and event in (
            TERMINAL_EVENTS | {"WAITING"}
        ):
            trial.start_time = int(ts)
        if event in TERMINAL_EVENTS:
            trial.end_time = _int_or_none(ts)
        if event == "USER_TO_CANCEL":
            trial.status = "USER_CANCELED"
        elif event == "ADD_CUSTOMIZED":
            trial.status = "WAITING"
        elif event != "ADD_HYPERPARAMETER":
            trial.status = event
        hparam = _hyper_parameters(data)
        if hparam is not None:
            _start_with(trial, hparam, sets)
        if seq_id is not None and trial.sequence_id is None:
            trial.sequence_id = int(seq_id)

    _attach_metrics(trials, metrics)
    reconcile_parameters(trials, sets)
    return RawExperiment(
        nni_id=nni_id,
        name=config.get("experimentName") or (entry.name if entry else None),
        status=entry.status if entry else "STOPPED",
        config=config,
        start_time=start if start is not None else (entry.start_time if entry else None),
        end_time=end if end is not None else (entry.end_time if entry else None),
        source="sqlite",
        source_stamp=stamp,
        trials=list(trials.values()),
    )


def _attach_metrics(trials: dict[str, RawTrial], metrics: Any) -> None:
    """``metrics``: (trial job id, parameter id, type, sequence, data) in arrival order."""
    periodic: dict[str, list[tuple[int, str]]] = {}
    for job_id, parameter_id, mtype, sequence, data in metrics:
        trial = trials.get(job_id)
        if trial is None:
            continue
        if trial.reported_parameter_id is None:
            trial.reported_parameter_id = _int_or_none(parameter_id)
        if mtype == "FINAL":
            if trial.final is None:  # NNI, too, keeps the first FINAL
                trial.final = data
        elif mtype == "PERIODICAL":
            periodic.setdefault(job_id, []).append((_int_or_none(sequence) or 0, data))
    for job_id, items in periodic.items():
        items.sort(key=lambda it: it[0])  # stable: ties keep arrival order
        trials[job_id].intermediate = [d for _, d in items]


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
    sets: dict[int, dict[str, Any]] = {}
    for job in jobs:
        trial = RawTrial(
            trial_job_id=job["trialJobId"],
            status=str(job.get("status", "UNKNOWN")),
            sequence_id=_int_or_none(job.get("sequenceId")),
            parameters={},
            start_time=_int_or_none(job.get("startTime")),
            end_time=_int_or_none(job.get("endTime")),
        )
        hps = job.get("hyperParameters") or []
        hparam = _hyper_parameters(hps[0]) if hps else None
        if hparam is not None:
            _start_with(trial, hparam, sets)
        trials[trial.trial_job_id] = trial
    _attach_metrics(
        trials,
        (
            (m.get("trialJobId"), m.get("parameterId"), m.get("type"), m.get("sequence"),
             m.get("data"))
            for m in metrics
        ),
    )  # fmt: skip
    reconcile_parameters(trials, sets)
    config = profile.get("params") or {}
    return RawExperiment(
        nni_id=profile.get("id") or entry.nni_id,
        name=config.get("experimentName") or entry.name,
        status=status,
        config=config,
        start_time=_int_or_none(profile.get("startTime")) or entry.start_time,
        end_time=_int_or_none(profile.get("endTime")),
        source="rest",
        source_stamp=None,
        trials=list(trials.values()),
    )


def nni_dir_default() -> Path:
    return Path(os.path.expanduser("~")) / "nni-experiments"
