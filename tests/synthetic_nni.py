"""Synthetic NNI experiments with NNI 3.0's exact nni.sqlite schema and encodings, for tests and
the benchmark (a real NNI run takes minutes; ingest must be measured on thousands of trials)."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from trials import contract

# Verbatim from nni_node/core/sqlDatabase.js (NNI 3.0).
NNI_SCHEMA = """
create table TrialJobEvent (
    timestamp integer,
    trialJobId text,
    event text,
    data text,
    logPath text,
    sequenceId integer,
    message text,
    environmentId text);
create index TrialJobEvent_trialJobId on TrialJobEvent(trialJobId);
create index TrialJobEvent_event on TrialJobEvent(event);

create table MetricData (timestamp integer, trialJobId text, parameterId text, type text, sequence integer, data text);
create index MetricData_trialJobId on MetricData(trialJobId);
create index MetricData_type on MetricData(type);

create table ExperimentProfile (
    params text,
    id text,
    execDuration integer,
    startTime integer,
    endTime integer,
    logDir text,
    nextSequenceId integer,
    revision integer);
create index ExperimentProfile_id on ExperimentProfile(id);
"""  # noqa: E501

LAYERS = {"mlp4": [2, 3, 4], "mlp6": [2, 3, 4, 5, 6], "cnn": [1, 2, 3], "sage": [1, 2]}


def _encode(value: Any) -> str:
    # The trial sends json.dumps(value); the manager stores JSON.stringify of that string.
    return json.dumps(json.dumps(value))


def synthetic_trial(
    rng: random.Random,
    model: str,
    seq: int,
    epochs: int,
    lambda_effect: Mapping[int, float] | None = None,
    early_stopped: float = 0.0,
) -> tuple[dict[str, Any], list[float], Any, str]:
    """(parameters, per-epoch val errors, final metric, status) of one plausible trial.

    ``lambda_effect`` {layer: c} adds c·(log10 λ)² to the error of trials that regularize that
    layer (a λ that matters, best at λ = 1); ``early_stopped`` is the share of trials an
    assessor stops halfway (no final metric). Both off by default: existing data stays as is."""
    layers_all = LAYERS.get(model, [2, 3, 4])
    choice = rng.choice(
        ["none"] + [str(k) for k in layers_all] + [f"{layers_all[-2]},{layers_all[-1]}"]
    )
    params: dict[str, Any] = {contract.LAYERS: choice}
    for k in layers_all:
        params[contract.lambda_key(k)] = 10 ** rng.uniform(-2, 2)
    params[contract.SEED] = rng.choice([0, 1, 2])
    active = [] if choice == "none" else [int(x) for x in choice.split(",")]
    base = 20.0 - (1.5 if layers_all[-1] in active else 0.0)
    for k, c in (lambda_effect or {}).items():
        if k in active:
            base += c * math.log10(params[contract.lambda_key(k)]) ** 2
    curve = [base + 5.0 / (e + 1) + rng.random() for e in range(epochs)]
    if early_stopped and rng.random() < early_stopped:
        return params, curve[: max(1, epochs // 2)], None, "EARLY_STOPPED"
    best = min(range(epochs), key=curve.__getitem__)
    final: dict[str, Any] = {
        contract.DEFAULT: curve[best], contract.TEST_ERROR: curve[best] + rng.random(),
        contract.BEST_EPOCH: best + 1, contract.EPOCH_SECONDS: 0.1 + rng.random() / 10,
    }  # fmt: skip
    for k in layers_all:
        final[contract.var_init_key(k)] = 10.0 * k
        final[contract.var_key(k)] = 8.0 * k + rng.random() - (1.0 if k in active else 0.0)
    status = "SUCCEEDED"
    r = rng.random()
    if r < 0.04:
        return params, curve[:1], None, "FAILED"
    if r < 0.06:
        return params, curve, curve[best], status  # a bare float final, off-contract
    return params, curve, final, status


def write_nni_sqlite(
    path: Path,
    exp_id: str,
    *,
    n_trials: int,
    model: str = "mlp4",
    dataset: str = "digits",
    epochs: int = 5,
    seed: int = 0,
    start_ms: int = 1_700_000_000_000,
    lambda_effect: Mapping[int, float] | None = None,
    early_stopped: float = 0.0,
    report_config: bool = True,
) -> list[dict[str, Any]]:
    """Write ``<path>`` as NNI would after running ``n_trials``; returns the trials written.

    ``report_config``: the final reports carry ``config``, as this project's trials report it;
    off for tests that edit NNI's parameter records and need those read back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    conn.executescript(NNI_SCHEMA)
    params = {
        "experimentName": f"synthetic-{exp_id}",
        "searchSpace": {"layers": {"_type": "choice", "_value": ["none"]}},
        "trialCommand": (
            f"python -m trials.mlp --model {model} --dataset {dataset} --epochs {epochs}"
        ),
        "trialConcurrency": 1,
        "maxTrialNumber": n_trials,
        "trainingService": {"platform": "local"},
    }
    conn.execute(
        "insert into ExperimentProfile values (?,?,?,?,?,?,?,?)",
        (json.dumps(params), exp_id, 100, start_ms, start_ms + 1000 * n_trials,
         str(path.parent.parent.parent), n_trials, 1),
    )  # fmt: skip
    events, metrics, written = [], [], []
    t = start_ms
    for seq in range(n_trials):
        job = f"T{seq:05d}"
        p, curve, final, status = synthetic_trial(
            rng, model, seq, epochs, lambda_effect, early_stopped
        )
        hp = json.dumps({"parameter_id": seq, "parameter_source": "algorithm",
                         "parameters": p, "parameter_index": 0})  # fmt: skip
        events.append((t, job, "WAITING", hp, None, seq, None, "local-env"))
        events.append((t + 1, job, "RUNNING", None, "/log", None, None, "local-env"))
        for e, v in enumerate(curve):
            metrics.append((t + 2 + e, job, str(seq), "PERIODICAL", e, _encode(v)))
        if report_config and isinstance(final, dict):
            # What this project's trials report: the effective configuration they trained with.
            active = contract.parse_layers(p[contract.LAYERS])
            final = {**final, contract.CONFIG: {
                **contract.config_of(p, active, "mlp"), contract.MODEL: model,
                contract.DATASET: dataset, contract.EPOCHS: epochs}}  # fmt: skip
        if final is not None:
            metrics.append((t + 900, job, str(seq), "FINAL", 0, _encode(final)))
        events.append((t + 1000, job, status, None, "/log", None, None, "local-env"))
        written.append({"trial_job_id": job, "parameters": p, "final": final, "status": status})
        t += 1000
    conn.executemany("insert into TrialJobEvent values (?,?,?,?,?,?,?,?)", events)
    conn.executemany("insert into MetricData values (?,?,?,?,?,?)", metrics)
    conn.commit()
    conn.close()
    return written


def write_registry(nni_dir: Path, entries: dict[str, dict[str, Any]]) -> None:
    """``<nni_dir>/.experiment`` as nnictl writes it."""
    nni_dir.mkdir(parents=True, exist_ok=True)
    data = {
        exp_id: {"id": exp_id, "port": 1, "startTime": 1_700_000_000_000, "endTime": "N/A",
                 "status": "STOPPED", "platform": "local", "experimentName": exp_id, "tag": [],
                 "pid": None, "webuiUrl": [], "logDir": str(nni_dir), "prefixUrl": None, **extra}
        for exp_id, extra in entries.items()
    }  # fmt: skip
    (nni_dir / ".experiment").write_text(json.dumps(data, indent=4), encoding="utf-8")


def make_nni_dir(root: Path, experiments: dict[str, dict[str, Any]]) -> Path:
    """``<root>/nni-experiments`` with a registry and one synthetic nni.sqlite per experiment;
    ``experiments`` maps id -> ``write_nni_sqlite`` keyword arguments."""
    nni_dir = root / "nni-experiments"
    for exp_id, kwargs in experiments.items():
        write_nni_sqlite(nni_dir / exp_id / "db" / "nni.sqlite", exp_id, **kwargs)
    write_registry(nni_dir, {exp_id: {} for exp_id in experiments})
    return nni_dir


def dump_tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of our tables ordered by primary key: two equal dumps mean no row changed."""
    with engine.connect() as conn:
        return {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY id"))]
            for t in ("experiments", "trials", "trial_layers")
        }
