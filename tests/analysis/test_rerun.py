"""Plans are built, not copied: a confirmation's and a warm start's command, code directory,
tuner, assessor and training service are this installation's, whatever the stored record says."""

from __future__ import annotations

import json

import pytest

from analysis import rerun
from analysis.confirmation import confirmation_plan
from analysis.rerun import PlanRefused, Rerun
from analysis.warm_start import warm_start
from storage import queries as q
from storage.errors import NotFound
from storage.ingest import ingest_experiment
from storage.nni.records import RawExperiment, RawTrial
from trials import contract

G = q.Group("mlp4", "digits")
POPEN = {"className": "subprocess.Popen", "classArgs": {"args": "id", "shell": True}}
TEAM = {"platform": "remote", "machineList": [{"host": "worker-1", "user": "nsr"}]}


def trial(job: str, layers: str, seed: int, val: float, lam: float | None = None,
          reported: bool = True) -> RawTrial:  # fmt: skip
    params: dict = {"layers": layers, "seed": seed}
    if lam is not None:
        params[f"lambda_{layers}"] = lam
    body: dict = {"default": val, "test_error": val + 1, "best_epoch": 2,
                  "var_2": 2.0, "var_3": 3.0, "var_4": 4.0}  # fmt: skip
    if reported:
        body["config"] = {"entry": "mlp", "model": "mlp4", "dataset": "digits", "epochs": 15,
                          "lr": 0.1, **params}  # fmt: skip
    return RawTrial(job, "SUCCEEDED", int(job[1:]), params, 1, 2, json.dumps(json.dumps(body)),
                    [val])  # fmt: skip


TRIALS = [trial("t1", "none", 0, 10.0), trial("t2", "4", 0, 8.0, lam=2.0),
          trial("t3", "3", 1, 9.0, lam=0.5), trial("t4", "none", 1, 10.5)]  # fmt: skip


def stored(command: str, **extra: object) -> dict:
    return {"trialCommand": command, "trialCodeDirectory": "/somewhere/else",
            "trialConcurrency": 3, "maxTrialNumber": 8,
            "trainingService": {"platform": "remote", "machineList": [{"host": "evil.example"}]},
            "searchSpace": {"layers": {"_type": "choice", "_value": ["none", "3", "4"]},
                            "seed": {"_type": "choice", "_value": [0, 1]}}, **extra}  # fmt: skip


def ingest(db, nni_id: str, config: dict, trials: list[RawTrial] = TRIALS) -> None:
    with db.session_scope() as s:
        ingest_experiment(s, RawExperiment(nni_id, "search", "STOPPED", config, 1, 2, "sqlite",
                                           None, trials))  # fmt: skip


def test_plan_and_warm_start_are_this_installations_whatever_the_record_says(db) -> None:
    ingest(db, "s1", stored("python -m trials.mlp --model mlp4 --dataset digits --epochs 15 "
                            "--lr 0.1 --queue-batches 7", tuner={"name": "TPE",
                            "classArgs": {"optimize_mode": "minimize"}},
                            assessor={"name": "Medianstop"}))  # fmt: skip
    with db.session_scope() as s:
        plan = confirmation_plan(s, G, top_k=2, n_seeds=2, rerun=Rerun(TEAM))
        ws = warm_start(s, G, Rerun(TEAM))
    built = "python -m trials.mlp --model mlp4 --dataset digits --epochs 15 --lr 0.1"
    for exp in (plan.experiment, ws.experiment):
        assert exp["trialCommand"] == built  # from the reported configuration, not the record
        assert exp["trialCodeDirectory"] == str(rerun.REPO)
        assert exp["trainingService"] == TEAM
    assert plan.experiment["tuner"] == {"name": "Batch"}
    assert ws.experiment["tuner"] == {"name": "TPE", "classArgs": {"optimize_mode": "minimize"}}
    assert ws.experiment["assessor"] == {"name": "Medianstop"}
    assert plan.user_command is None and ws.user_command is None
    sets = plan.experiment["searchSpace"]["combine_params"]["_value"]
    assert sets[0] == {"layers": "4", "lambda_4": 2.0, "seed": 1000}


@pytest.mark.parametrize(
    ("config", "why"),
    [
        (stored("touch /tmp/nsr-x; echo python -m trials.mlp --model mlp4"), "not a plain"),
        (stored("python -m trials.mlp --model mlp4", tuner=POPEN),
         "'subprocess.Popen' is not one this installation runs"),
        (stored("python my_trial.py --model mlp4"), "does not run one of this project"),
    ],
)  # fmt: skip
def test_a_tampered_search_is_refused_naming_why(db, config: dict, why: str) -> None:
    ingest(db, "bad", config)
    with db.session_scope() as s:
        with pytest.raises(PlanRefused, match=why):
            confirmation_plan(s, G, top_k=1, n_seeds=2)
        with pytest.raises(PlanRefused, match=why):
            warm_start(s, G)


def test_a_foreign_search_needs_the_users_command_which_is_shown_back(db) -> None:
    foreign = [trial(t.trial_job_id, *args, reported=False) for t, args in zip(
        TRIALS, [("none", 0, 10.0), ("4", 0, 8.0, 2.0), ("3", 1, 9.0, 0.5), ("none", 1, 10.5)],
        strict=True)]  # fmt: skip
    ingest(db, "f1", stored("python -m trials.mlp --model mlp4 --dataset digits"), foreign)
    with db.session_scope() as s:
        with pytest.raises(NotFound, match="reported its configuration"):
            confirmation_plan(s, G, top_k=1, n_seeds=2)
        with pytest.raises(PlanRefused, match="name the command"):
            warm_start(s, G)
        mine = "python my_trial.py --epochs 15"
        plan = confirmation_plan(s, G, top_k=1, n_seeds=2, rerun=Rerun(command=mine))
        ws = warm_start(s, G, Rerun(command=mine))
    assert plan.experiment["trialCommand"] == mine == plan.user_command
    assert ws.experiment["trialCommand"] == mine == ws.user_command
    assert plan.experiment["trialCodeDirectory"] == str(rerun.REPO)


def test_stored_values_go_through_the_trials_own_rules(db) -> None:
    bad = [trial("t1", "none", 0, 10.0), trial("t2", "4", 0, 8.0, lam=-3.0)]
    ingest(db, "neg", stored("python -m trials.mlp --model mlp4 --dataset digits"), bad)
    with db.session_scope() as s:
        with pytest.raises(PlanRefused, match=r"lambda_4=-3.0 must be > 0"):
            confirmation_plan(s, G, top_k=1, n_seeds=2)


def test_checked_params_refuses_an_unknown_entry_and_coerces_values() -> None:
    with pytest.raises(PlanRefused, match="entry 'evil'"):
        rerun.checked_params({"entry": "evil"})
    entry, params = rerun.checked_params({"entry": "mlp", "epochs": "3", "layers": "4"})
    assert entry == "mlp" and params == {"epochs": 3, "layers": "4"}
    assert contract.entry_command(entry, params) == "python -m trials.mlp --epochs 3 --layers 4"


def test_plans_run_warm_on_the_local_service_and_a_warm_search_is_ours() -> None:
    local, team = Rerun(), Rerun(TEAM)
    flags = {"epochs": 3}
    assert rerun.trial_command("mlp", flags, local) == "python -m trials.warm mlp --epochs 3"
    assert rerun.trial_command("mlp", flags, team) == "python -m trials.mlp --epochs 3"
    assert rerun.foreign_reason({}, "python -m trials.warm mlp --model mlp4") is None
    assert "does not run" in (rerun.foreign_reason({}, "python -m trials.warm evil --x 1") or "")
