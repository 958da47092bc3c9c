"""The λ that took effect, read from a trial's effective configuration: a nested-choice search
(the regularizer's branch carries ``layers`` and ``lambda_<k>``) and a search whose trial command
fixes ``--layers`` show their λ on the experiment page's data and in the importance."""

from __future__ import annotations

import json

import pytest

from analysis import importance
from storage import queries
from storage.ingest import ingest_experiment
from storage.nni.records import RawExperiment, RawTrial
from storage.queries import TrialSelection

CMD = "python -m trials.mlp --model mlp4 --dataset digits --epochs 15 --lr 0.1"


def final(val: float) -> str:
    return json.dumps(json.dumps({"default": val, "test_error": val + 1.0, "best_epoch": 3}))


def experiment(nni_id: str, command: str, params: list[dict]) -> RawExperiment:
    trials = [
        RawTrial(f"t{i}", "SUCCEEDED", i, p, 1, 2, final(10.0 + i), [10.0 + i])
        for i, p in enumerate(params)
    ]
    config = {"trialCommand": command, "trialCodeDirectory": "/code", "searchSpace": {}}
    return RawExperiment(nni_id, "search", "STOPPED", config, 1, 2, "sqlite", None, trials)


NESTED = [
    {"regularizer": {"_name": "nsr", "layers": "3", "lambda_3": 2.0}, "seed": 0},
    {"regularizer": {"_name": "nsr", "layers": "3,4", "lambda_3": 0.5, "lambda_4": 7.0},
     "seed": 1},
    {"regularizer": {"_name": "none"}, "seed": 2},
]  # fmt: skip
FIXED = [{"lambda_4": 0.5, "lambda_3": 9.0, "seed": 0}, {"lambda_4": 3.0, "seed": 1}]


@pytest.fixture
def stored(db):
    with db.session_scope() as s:
        ingest_experiment(s, experiment("nested", CMD, NESTED))
        ingest_experiment(s, experiment("fixed", CMD + " --layers 4", FIXED))
    return db


def test_nested_search_points_and_importance_carry_the_lambda_that_took_effect(stored):
    sel = TrialSelection(experiments=("nested",))
    with stored.session_scope() as s:
        pts = queries.trial_points(s, sel, curves=False)
        trials = importance.load_trials(s, sel)
    assert pts.trial == ["t0", "t1", "t2"]
    assert pts.lam == {"3": [2.0, 0.5, None], "4": [None, 7.0, None]}
    assert pts.other == ["", "", ""]  # nothing else was searched
    params = [t.params for t in trials]
    assert params[0]["lambda_3"] == 2.0 and "lambda_4" not in params[0]
    assert (params[1]["lambda_3"], params[1]["lambda_4"]) == (0.5, 7.0)
    assert not any(k.startswith("lambda_") for k in params[2])


def test_fixed_layers_search_points_and_importance_carry_the_lambda_that_took_effect(stored):
    sel = TrialSelection(experiments=("fixed",))
    with stored.session_scope() as s:
        pts = queries.trial_points(s, sel, curves=False)
        trials = importance.load_trials(s, sel)
    assert pts.layers == ["4", "4"] and pts.family == ["nsr", "nsr"]
    # Layer 3's λ was searched but layer 3 was not regularized: it took no effect.
    assert pts.lam == {"4": [0.5, 3.0]}
    assert pts.other == ["", ""]
    assert [t.params.get("lambda_4") for t in trials] == [0.5, 3.0]
    assert not any("lambda_3" in t.params for t in trials)
