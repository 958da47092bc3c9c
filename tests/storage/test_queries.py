"""Queries on a small hand-made search whose answers are computed by hand below."""

from __future__ import annotations

import json

import pytest

from analysis.best import best_config, best_lambda_per_layer, layer_recommendation
from analysis.verdict import compare
from storage import queries as q
from storage.errors import InvalidValue, NotFound
from storage.ingest import ingest_experiment
from storage.nni.records import RawExperiment, RawTrial
from storage.queries import Group, TrialSelection

G = Group("mlp4", "digits")


def final(val, test, var2, var3, var4):
    return json.dumps(json.dumps({"default": val, "test_error": test, "best_epoch": 3,
                                  "epoch_seconds": 0.1, "var_2": var2, "var_2_init": 50.0,
                                  "var_3": var3, "var_3_init": 60.0, "var_4": var4,
                                  "var_4_init": 70.0}))  # fmt: skip


def trial(job, layers, seed, fin, lams=(7.0, 7.0, 7.0), status="SUCCEEDED"):
    params = {"layers": layers, "lambda_2": lams[0], "lambda_3": lams[1], "lambda_4": lams[2],
              "seed": seed}  # fmt: skip
    return RawTrial(job, status, int(job[1:]), params, 1000, 2000, fin,
                    [json.dumps(json.dumps(v)) for v in (20.0, 15.0)])  # fmt: skip


TRIALS = [
    # vanilla over three seeds; λ values differ but are ineffective (layers = none)
    trial("t1", "none", 0, final(10.0, 11.0, 20.0, 30.0, 40.0), (1.0, 2.0, 3.0)),
    trial("t2", "none", 1, final(12.0, 13.0, 22.0, 36.0, 40.0), (4.0, 5.0, 6.0)),
    trial("t3", "none", 2, final(14.0, 15.0, 24.0, 30.0, 46.0), (7.0, 8.0, 9.0)),
    # single-layer NSR on layer 3: λ=1 over two seeds, λ=5 once
    trial("t4", "3", 0, final(9.0, 9.5, 20.0, 25.0, 40.0), (0.1, 1.0, 0.1)),
    trial("t5", "3", 1, final(11.0, 11.5, 20.0, 25.0, 40.0), (0.2, 1.0, 0.2)),
    trial("t6", "3", 0, final(8.5, 9.0, 20.0, 25.0, 40.0), (0.1, 5.0, 0.1)),
    # single-layer on layer 4, plus an off-contract bare-float final on layer 4
    trial("t7", "4", 0, final(9.5, 10.0, 20.0, 30.0, 35.0), (0.1, 0.1, 2.0)),
    trial("t8", "4", 0, json.dumps(json.dumps(100.0)), (0.1, 0.1, 3.0)),
    # two layers: the best trial overall
    trial("t9", "3,4", 0, final(8.0, 8.7, 20.0, 25.0, 35.0), (0.3, 1.0, 1.0)),
    trial("t10", "4", 1, None, (0.1, 0.1, 50.0), status="FAILED"),
]


@pytest.fixture
def loaded(db):
    exp = RawExperiment("q1", "hand", "STOPPED",
                        {"trialCommand": "python -m trials.mlp --model mlp4 --dataset digits",
                         "searchSpace": {}}, 1, 2, "sqlite", None, TRIALS)  # fmt: skip
    other = RawExperiment("q2", "other", "STOPPED",
                          {"trialCommand": "python -m trials.mlp --model mlp6 --dataset mnist"},
                          3, 4, "sqlite", None,
                          [trial("t1", "none", 0, final(5.0, 5.0, 1.0, 1.0, 1.0))])  # fmt: skip
    with db.session_scope() as s:
        ingest_experiment(s, exp)
        ingest_experiment(s, other)
    return db


def test_best_config_is_lowest_validation_error(loaded):
    with loaded.session_scope() as s:
        best = best_config(s, G)
    assert best.trial.trial_job_id == "t9" and best.trial.experiment == "q1"
    assert (best.trial.val_error, best.trial.test_error, best.trial.layers) == (8.0, 8.7, "3,4")
    assert best.trial.parameters == TRIALS[8].parameters
    assert best.n_trials == 9  # the FAILED trial has no validation error
    assert best.budget == "unknown" and not best.confirmed and "unconfirmed" in best.caveat
    assert [(r.layer, r.lam) for r in best.trial.layer_rows] == [(2, 0.0), (3, 1.0), (4, 1.0)]
    assert best.trial.intermediate == [20.0, 15.0]


def test_best_lambda_per_layer(loaded):
    with loaded.session_scope() as s:
        res = best_lambda_per_layer(s, G)
    got = [(r.layer, r.lam, r.val_error, r.trial_job_id, r.n_trials) for r in res.layers]
    assert got == [(3, 5.0, 8.5, "t6", 3), (4, 2.0, 9.5, "t7", 2)]


def test_layer_recommendation(loaded):
    with loaded.session_scope() as s:
        rec = layer_recommendation(s, G)
    # Vanilla means: var_2 = 22, var_3 = 32, var_4 = 42 → the paper's rule picks layer 4.
    assert [(r.layer, r.mean_var, r.n_trials) for r in rec.variance_ranking] == [
        (4, 42.0, 3), (3, 32.0, 3), (2, 22.0, 3)]  # fmt: skip
    assert rec.variance_ranking[0].mean_var_init == 70.0
    assert rec.recommended_layer == 4
    emp = [(r.layer, r.best_val_error, r.n_trials) for r in rec.empirical_ranking]
    assert emp == [(3, 8.5, 3), (4, 9.5, 2)]
    assert rec.empirical_ranking[0].mean_val_error == pytest.approx((9.0 + 11.0 + 8.5) / 3)
    assert rec.empirical_best_layer == 3 and rec.agree is False


def test_compare_vanilla_against_best_nsr_group(loaded):
    with loaded.session_scope() as s:
        cmp = compare(s, G)
    v, n = cmp.vanilla, cmp.nsr
    assert (v.n, v.seeds, v.val_error_mean, v.val_error_std) == (3, [0, 1, 2], 12.0, 2.0)
    assert (v.test_error_mean, v.test_error_std) == (13.0, 2.0)
    assert "lambda_3" not in v.parameters and "seed" not in v.parameters
    assert (n.layers, n.n, n.val_error_mean, n.val_error_std) == ("3,4", 1, 8.0, None)
    assert cmp.val_error_gain == pytest.approx(4.0)
    assert cmp.test_error_gain == pytest.approx(13.0 - 8.7)
    assert not cmp.confirmed and "winner" not in (cmp.caveat or "x") or "luckiest" in cmp.caveat
    # n = 1 on the NSR side: no interval and no p-value, never a made-up number.
    d = cmp.test_error_difference
    assert d.difference == pytest.approx(13.0 - 8.7) and d.ci_low is None and d.p_welch is None


def test_unknown_model_or_dataset_is_not_found_with_known_values(loaded):
    with loaded.session_scope() as s:
        with pytest.raises(NotFound, match=r"unknown model 'vgg'.*mlp4.*mlp6"):
            best_config(s, Group("vgg", "digits"))
        with pytest.raises(NotFound, match=r"unknown dataset 'cifar10' for model 'mlp4'.*digits"):
            layer_recommendation(s, Group("mlp4", "cifar10"))


def test_trial_lists_filter_sort_and_page(loaded):
    with loaded.session_scope() as s:
        page = q.list_trials(s, TrialSelection(model="mlp4"), limit=3)
        assert page.total == 10 and [t.trial_job_id for t in page.items] == ["t9", "t6", "t4"]
        last = q.list_trials(s, TrialSelection(model="mlp4"), limit=3, offset=9)
        assert [t.trial_job_id for t in last.items] == ["t10"]  # no val error: last
        desc = q.list_trials(
            s, TrialSelection(experiments=("q1",)), sort="val_error", descending=True, limit=1
        )
        assert desc.items[0].trial_job_id == "t8"
        assert q.list_trials(s, TrialSelection(layers=("4",))).total == 3
        assert q.list_trials(s, TrialSelection(statuses=("failed",))).items[0].trial_job_id == "t10"
        with pytest.raises(InvalidValue, match="limit=0.*1..1000"):
            q.list_trials(s, limit=0)
        with pytest.raises(NotFound, match="unknown experiment 'nope'"):
            q.list_trials(s, TrialSelection(experiments=("nope",)))
        exps = q.list_experiments(s)
        assert {(e.nni_id, e.n_trials, e.n_succeeded) for e in exps.items} == {
            ("q1", 10, 9), ("q2", 1, 1)}  # fmt: skip
        detail = q.get_trial(s, "q1", "t8")
        assert detail.final_raw is not None and detail.val_error == 100.0


def test_csv_rows_have_every_parameter_and_metric(loaded):
    with loaded.session_scope() as s:
        header, rows = q.iter_trials_csv_rows(s, TrialSelection(experiments=("q1",)))
        rows = list(rows)
    assert len(rows) == 10
    assert {"param.lambda_3", "param.seed", "metric.var_4_init", "metric.test_error"} <= set(header)
    by_job = {r[1]: dict(zip(header, r, strict=True)) for r in rows}
    assert by_job["t9"]["metric.var_4"] == 35.0 and by_job["t9"]["param.layers"] == "3,4"
