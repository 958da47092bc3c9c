"""A real NNI search with Hyperband (ours: advisors.hyperband, NNI's own dies on NNI 3.0): the
epoch budget is the resource, the best configuration of a round is re-run on more epochs, and
storage keeps the short-budget trials as partial results of the search's full budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nni_runner import REPO, NNIExperiment, final_reports, module_experiment, synced_service
from sqlalchemy import select

from storage.models import Trial
from trials import contract

pytestmark = pytest.mark.nni

R, ETA = 3, 3  # one bracket of interest: 3 configurations x 1 epoch, then the best x 3 epochs
TRIALS = 4
LR, BATCH = 0.01, 100


def hyperband_config() -> dict[str, Any]:
    return {
        "experimentName": "nsr-test-hyperband",
        "searchSpace": {
            "layers": {"_type": "choice", "_value": ["none", "4"]},
            "lambda_4": {"_type": "loguniform", "_value": [0.01, 100]},
        },
        "trialCommand": (
            f"python -m trials.mlp --model mlp4 --dataset digits --epochs {R} --lr {LR} "
            f"--batch-size {BATCH} --threads 1 --probe-samples 300"
        ),
        "trialCodeDirectory": str(REPO),
        # Two at a time: NNI's local service may swap the parameter sets of trials started
        # together, and storage must reconcile Hyperband's text ids as it does int ones.
        "trialConcurrency": 2,
        "maxTrialNumber": TRIALS,
        "maxExperimentDuration": "10m",
        "advisor": {
            "codeDirectory": str(REPO),
            "className": "advisors.hyperband.Hyperband",
            "classArgs": {"optimize_mode": "minimize", "R": R, "eta": ETA,
                          "exec_mode": "serial", "seed": 0},  # fmt: skip
        },
        "trainingService": {"platform": "local"},
    }


hyperband_experiment = module_experiment("nni-hyperband", hyperband_config, timeout=480)


def test_hyperband_runs_on_nni_3_and_promotes_the_best_short_trial(
    hyperband_experiment: NNIExperiment,
) -> None:
    exp = hyperband_experiment
    exp.assert_done(TRIALS)
    assert all(t["status"] == "SUCCEEDED" for t in exp.trials), exp.trials
    params, reports = exp.ran_parameters(), final_reports(exp)
    budgets = sorted(p[contract.TRIAL_BUDGET] for p in params.values())
    assert budgets == [1, 1, 1, R]
    for job, report in reports.items():  # each trial trained the epochs it was handed
        assert report[contract.EPOCHS_RUN] == params[job][contract.TRIAL_BUDGET]
        assert report[contract.CONFIG]["epochs"] == params[job][contract.TRIAL_BUDGET]
    short = {job: r for job, r in reports.items() if r[contract.EPOCHS_RUN] == 1}
    (full_job,) = set(reports) - set(short)
    lowest = min(r[contract.DEFAULT] for r in short.values())
    tied = [job for job, r in short.items() if r[contract.DEFAULT] == lowest]  # whole images tie

    def without_budget(p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k != contract.TRIAL_BUDGET}

    promoted = without_budget(params[full_job])
    assert any(promoted == without_budget(params[job]) for job in tied), (promoted, tied)


def test_storage_keeps_short_budget_trials_as_partial_results_of_the_full_budget(
    hyperband_experiment: NNIExperiment, tmp_path: Path
) -> None:
    exp = hyperband_experiment
    params, reports = exp.ran_parameters(), final_reports(exp)
    full_budget = f"epochs={R} lr={LR} batch_size={BATCH}"
    with synced_service(exp, tmp_path) as (client, report):
        assert report["errors"] == [] and report["inserted"] == TRIALS
        with client.app.state.db.session_scope() as s:
            stored = {t.trial_job_id: (t.parameters, t.partial, t.epochs_run, t.budget, t.config)
                      for t in s.scalars(select(Trial)).all()}  # fmt: skip
        assert set(stored) == set(reports)
        for job, (p, partial, run, budget, config) in stored.items():
            assert p == params[job]  # Hyperband's text parameter ids reconciled
            epochs = reports[job][contract.EPOCHS_RUN]
            assert run == epochs and config["epochs"] == epochs and budget == full_budget
            assert partial is (epochs < R)
        full_job = next(job for job, r in reports.items() if r[contract.EPOCHS_RUN] == R)
        answer = client.get("/api/models/mlp4/digits/best-config").json()
        assert answer["trial"]["trial_job_id"] == full_job
        assert answer["trial"]["partial"] is False
