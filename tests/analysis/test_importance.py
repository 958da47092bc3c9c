"""Importance (optuna on an in-memory study of the stored trials) and the columns the results
pages plot: only the λ that took effect count, and a λ that drives the error ranks first."""

from __future__ import annotations

import pytest
from synthetic_nni import make_nni_dir

from analysis import importance
from storage import queries
from storage.errors import InvalidValue, NotFound
from storage.queries import TrialSelection
from storage.sync import sync_all

# Layer 3's λ drives the error (c·log10(λ)², best at λ = 1); layers 2 and 4's do not.
EFFECT = {3: 1.5}


@pytest.fixture
def synced(db, tmp_path):
    nni_dir = make_nni_dir(tmp_path, {
        "drive": {"n_trials": 400, "epochs": 4, "seed": 7, "lambda_effect": EFFECT,
                  "early_stopped": 0.05},
    })  # fmt: skip
    assert not sync_all(db, nni_dir).errors
    return db


def test_points_carry_only_the_lambda_that_took_effect(synced):
    with synced.session_scope() as s:
        pts = queries.trial_points(s, TrialSelection(experiments=("drive",)))
        stored = queries.list_trials(s, TrialSelection(experiments=("drive",)), limit=1000).items
    by_job = {t.trial_job_id: t for t in stored}
    assert len(pts.trial) == 400 and set(pts.lam) == {"2", "3", "4"}
    for i, job in enumerate(pts.trial):
        t = by_job[job]
        active = set() if t.layers == "none" else {int(k) for k in t.layers.split(",")}
        for k in (2, 3, 4):
            expected = t.parameters[f"lambda_{k}"] if k in active else None
            assert pts.lam[str(k)][i] == expected, (job, k, t.layers)
        assert "lambda_" not in pts.other[i] and "seed" not in pts.other[i]
    # Completion order, and early-stopped trials flagged with their shorter curve.
    ends = [e for e in pts.end_time if e is not None]
    assert ends == sorted(ends)
    stopped = [i for i, s in enumerate(pts.status) if s == "EARLY_STOPPED"]
    assert stopped and all(pts.partial[i] and len(pts.curves[i]) == 2 for i in stopped)
    assert not any(pts.partial[i] for i, s in enumerate(pts.status) if s == "SUCCEEDED")


def test_study_gives_each_trial_only_its_regularized_lambdas(synced):
    with synced.session_scope() as s:
        trials = importance.load_trials(s, TrialSelection(experiments=("drive",)))
    study, params = importance.build_study(trials)
    assert {"layers", "seed", "lambda_2", "lambda_3", "lambda_4"} <= set(params)
    for t in study.trials:
        layers = t.params["layers"]
        active = set() if layers == "none" else set(layers.split(","))
        assert {k[len("lambda_"):] for k in t.params if k.startswith("lambda_")} == active


def test_lambda_that_drives_the_error_ranks_first(synced):
    with synced.session_scope() as s:
        result = importance.importance(s, TrialSelection(experiments=("drive",)))
    groups = {g.scope: g for g in result.groups}
    overall = groups["all trials"].importances
    assert overall["lambda_3"] > overall["lambda_4"] and overall["lambda_3"] > overall["lambda_2"]
    both = groups["layers=3,4"].importances
    assert set(both) == {"lambda_3", "lambda_4", "seed"}
    assert both["lambda_3"] > both["lambda_4"] and both["lambda_3"] > 0.5
    assert groups["layers=3"].importances["lambda_3"] > 0.5
    # A subset without layer 3 never scores λ3: it had no effect there.
    assert "lambda_3" not in groups["layers=4"].importances
    # Every trial with an error is in "all trials"; the subsets split the regularized ones.
    subsets = sum(g.n_trials for g in result.groups[1:])
    assert result.n_trials == groups["all trials"].n_trials == subsets + _vanilla_count(synced)


def _vanilla_count(db) -> int:
    with db.session_scope() as s:
        sel = TrialSelection(experiments=("drive",), layers=("none",))
        return sum(v is not None for v in queries.trial_points(s, sel, curves=False).val_error)


def test_filters_and_small_groups(synced):
    with synced.session_scope() as s:
        sel = TrialSelection(experiments=("drive",), layers=("3,4",), max_error=22.0)
        result = importance.importance(s, sel)
        pts = queries.trial_points(s, sel, curves=False)
        assert result.n_trials == len(pts.trial) and set(pts.layers) == {"3,4"}
        assert all(v <= 22.0 for v in pts.val_error)
        assert [g.scope for g in result.groups] == ["all trials", "layers=3,4"]
        few = importance.importance(s, TrialSelection(experiments=("drive",), max_error=18.5))
        assert few.groups[0].importances == {} and "at least" in (few.groups[0].note or "")
        with pytest.raises(InvalidValue, match="min_error=5.0 is above max_error=1.0"):
            importance.importance(s, TrialSelection(min_error=5.0, max_error=1.0))
        with pytest.raises(NotFound, match="unknown experiment 'nope'"):
            queries.trial_points(s, TrialSelection(experiments=("nope",)))
