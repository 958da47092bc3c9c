"""A real NNI search with the Medianstop assessor: hopeless trials are stopped early, and storage
keeps them with their status and their validation curve so far, never as the best configuration.

What NNI 3.0 records for a trial its assessor stopped: on the local training service (its V3asV1
wrapper), USER_CANCELED, never EARLY_STOPPED — ``cancelTrialJob`` sets the early-stop flag only
after ``await stopTrial()``, which returns after the trial's end event has already set the status
(nni_node/training_service/v3/compat.js). The trial must die by NNI's SIGINT for even that: one
that catches it and exits 130 is recorded FAILED. The manager's log keeps the assessor's "KI"
command for each such trial, and storage reads it back: those trials are stored EARLY_STOPPED.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nni_runner import REPO, NNIExperiment, decode, module_experiment, synced_service
from sqlalchemy import select

from storage.models import Trial

pytestmark = pytest.mark.nni

EPOCHS = 5
TRIALS = 4
START_STEP = 2
GOOD_LR, HOPELESS_LR = 0.01, 1e-5
# NNI 3.0's record of an assessor's stop on the local training service (see above).
STOPPED_STATUS = "USER_CANCELED"


def early_stopping_config() -> dict[str, Any]:
    """MLP-4 on digits, one trial at a time in grid order: two trials that learn (lr 0.01), then
    two that cannot (lr 1e-5: ~89 % error, against ~10 % by epoch 2). Batches of 2 make an
    epoch last ~0.5 s, so NNI's stop arrives while a stopped trial still has epochs to go."""
    return {
        "experimentName": "nsr-test-early-stopping",
        "searchSpace": {
            "layers": {"_type": "choice", "_value": ["none"]},
            "lr": {"_type": "choice", "_value": [GOOD_LR, HOPELESS_LR]},
            "seed": {"_type": "choice", "_value": [0, 1]},
        },
        "trialCommand": (
            f"python -m trials.mlp --model mlp4 --dataset digits --epochs {EPOCHS} "
            "--batch-size 2 --threads 1 --probe-samples 300"
        ),
        "trialCodeDirectory": str(REPO),
        "trialConcurrency": 1,
        "maxTrialNumber": TRIALS,
        "maxExperimentDuration": "10m",
        "tuner": {"name": "GridSearch"},
        "assessor": {
            "name": "Medianstop",
            "classArgs": {"optimize_mode": "minimize", "start_step": START_STEP},
        },
        "trainingService": {"platform": "local"},
    }


early_experiment = module_experiment("nni-early", early_stopping_config, timeout=480)


def curves(exp: NNIExperiment) -> dict[str, list[float]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for m in exp.metrics:
        if m["type"] == "PERIODICAL":
            out.setdefault(m["trialJobId"], []).append((m["sequence"], float(decode(m["data"]))))
    return {job: [v for _, v in sorted(points)] for job, points in out.items()}


def test_medianstop_stops_the_hopeless_trials_and_lets_the_good_ones_succeed(
    early_experiment: NNIExperiment,
) -> None:
    exp = early_experiment
    exp.assert_done(TRIALS)
    params, curve = exp.ran_parameters(), curves(exp)
    finals = {m["trialJobId"] for m in exp.metrics if m["type"] == "FINAL"}
    status = {t["trialJobId"]: t["status"] for t in exp.trials}
    for job, st in status.items():
        if params[job]["lr"] == GOOD_LR:
            assert st == "SUCCEEDED", exp.trial_log(job)
            assert job in finals and len(curve[job]) == EPOCHS
        else:
            assert st == STOPPED_STATUS, exp.trial_log(job)
            # Judged at START_STEP reports and killed before its last epoch: no final report.
            assert job not in finals
            assert START_STEP <= len(curve[job]) < EPOCHS
            assert min(curve[job]) > 50.0  # it really was hopeless


def test_storage_keeps_stopped_trials_with_their_status_and_curve(
    early_experiment: NNIExperiment, tmp_path: Path
) -> None:
    exp = early_experiment
    params, curve = exp.ran_parameters(), curves(exp)
    status = {t["trialJobId"]: t["status"] for t in exp.trials}
    stopped = {job for job, st in status.items() if st == STOPPED_STATUS}
    assert len(stopped) == TRIALS // 2
    with synced_service(exp, tmp_path) as (client, report):
        assert report["errors"] == [] and report["inserted"] == TRIALS
        with client.app.state.db.session_scope() as s:
            rows = {t.trial_job_id: t for t in s.scalars(select(Trial)).all()}
            stored = {job: (t.status, t.parameters, t.intermediate, t.val_error, t.final_metrics,
                            t.partial, t.epochs_run, t.budget)
                      for job, t in rows.items()}  # fmt: skip
        assert set(stored) == set(status)
        stopped_budget = f"epochs={EPOCHS} lr={HOPELESS_LR!r} batch_size=2"
        for job, (st, p, intermediate, val_error, final, partial, run, budget) in stored.items():
            assert p == params[job]
            assert intermediate == curve[job]
            assert val_error is not None and val_error == min(curve[job])
            if job in stopped:
                # NNI said USER_CANCELED; its log says the assessor stopped it.
                assert st == "EARLY_STOPPED" and final is None and partial
                assert run == len(curve[job]) < EPOCHS and budget == stopped_budget
            else:
                assert st == "SUCCEEDED" and not partial and run == EPOCHS
        best = client.get("/api/models/mlp4/digits/best-config").json()["trial"]
        assert best["trial_job_id"] not in stopped and best["status"] == "SUCCEEDED"
        # Their budget group has no full-budget trial: ranked only when asked.
        only = client.get("/api/models/mlp4/digits/best-config", params={"budget": stopped_budget})
        assert only.status_code == 404 and "include_partial" in only.json()["detail"]
        asked = client.get(
            "/api/models/mlp4/digits/best-config",
            params={"budget": stopped_budget, "include_partial": "true"},
        ).json()["trial"]
        assert asked["trial_job_id"] in stopped and asked["partial"]
