"""GET /api/experiments/{id}/importance and /api/models/{m}/{d}/importance: the numbers equal
``optuna.importance`` called directly on a study the test builds itself from the stored trials
(REST), and a λ that drives the error ranks above one that does not."""

from __future__ import annotations

import optuna
import pytest
from fastapi.testclient import TestClient
from synthetic_nni import make_nni_dir

from analysis import importance
from service.app import create_app
from service.cache import ResponseCache
from service.settings import Settings


@pytest.fixture
def api(db_url, tmp_path):
    nni_dir = make_nni_dir(tmp_path, {
        "drive": {"n_trials": 300, "epochs": 3, "seed": 11, "lambda_effect": {3: 1.5}},
        "other": {"n_trials": 120, "epochs": 3, "seed": 12, "lambda_effect": {3: 1.5}},
    })  # fmt: skip
    settings = Settings(database_url=db_url, nni_dir=nni_dir, sync_interval=0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync").json()["inserted"] == 420
        yield c


def direct_importance(
    trials: list[dict],
    evaluator: optuna.importance.BaseImportanceEvaluator,
    layers: str | None = None,
    normalize: bool = True,
) -> dict[str, float]:
    """optuna.importance on a study written here from the REST trials, independently of
    analysis/importance.py: each λ only where its layer is regularized, log scale over the range
    seen; layer subset and seed as choices; trials without an error left out."""
    done = [t for t in trials if t["val_error"] is not None]
    if layers is not None:
        done = [t for t in done if t["layers"] == layers]
    rows = []
    for t in done:
        active = [] if t["layers"] == "none" else t["layers"].split(",")
        p = {"seed": t["seed"], **{f"lambda_{k}": t["parameters"][f"lambda_{k}"] for k in active}}
        if layers is None:
            p["layers"] = t["layers"]
            p["regularizer"] = "vanilla" if t["layers"] == "none" else "nsr"
        rows.append((p, t["val_error"]))
    keys = {k for p, _ in rows for k in p}
    dists = {}
    for k in keys:
        vals = [p[k] for p, _ in rows if k in p]
        if len(set(vals)) < 2:
            continue
        if k.startswith("lambda_"):
            dists[k] = optuna.distributions.FloatDistribution(min(vals), max(vals), log=True)
        else:
            dists[k] = optuna.distributions.CategoricalDistribution(sorted(set(vals), key=str))
    study = optuna.create_study(direction="minimize")
    study.add_trials([
        optuna.trial.create_trial(params={k: v for k, v in p.items() if k in dists},
                                  distributions={k: dists[k] for k in p if k in dists}, value=v)
        for p, v in rows
    ])  # fmt: skip
    return optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=normalize)


def test_experiment_importance_equals_optuna_called_directly(api):
    # In stored order (fANOVA's forest depends on the order of its rows, PED-ANOVA does not).
    trials = api.get("/api/experiments/drive/trials",
                     params={"limit": 1000, "sort": "sequence_id"}).json()["items"]  # fmt: skip
    got = api.get("/api/experiments/drive/importance").json()
    assert got["method"] == "ped-anova" and got["n_trials"] == sum(
        t["val_error"] is not None for t in trials
    )
    groups = {g["scope"]: g["importances"] for g in got["groups"]}
    ped = optuna.importance.PedAnovaImportanceEvaluator()
    expected = direct_importance(trials, ped)
    assert groups["all trials"] == pytest.approx(expected, rel=1e-9)
    assert list(groups["all trials"]) == list(expected)  # same ranking
    for layers in ("3", "4", "3,4"):
        assert groups[f"layers={layers}"] == pytest.approx(
            direct_importance(trials, ped, layers), rel=1e-9
        )
    # Before normalization too: there a λ that changes nothing stays near 0 in its own group
    # (normalized, a lone λ takes nearly all the share even when it does nothing).
    raw = {g["scope"]: g["raw"] for g in got["groups"]}
    for layers in ("3", "4", "3,4"):
        assert raw[f"layers={layers}"] == pytest.approx(
            direct_importance(trials, ped, layers, normalize=False), rel=1e-9
        )
    assert raw["layers=3"]["lambda_3"] > 10 * raw["layers=4"]["lambda_4"]
    # Where both λ took effect, the one that drives the error ranks first, by far.
    assert groups["layers=3,4"]["lambda_3"] > 3 * groups["layers=3,4"]["lambda_4"]

    fan = api.get("/api/experiments/drive/importance", params={"method": "fanova"}).json()
    fgroups = {g["scope"]: g["importances"] for g in fan["groups"]}
    expected = direct_importance(trials, optuna.importance.FanovaImportanceEvaluator(seed=0), "3,4")
    assert fgroups["layers=3,4"] == pytest.approx(expected, rel=1e-9)
    assert fgroups["layers=3,4"]["lambda_3"] > fgroups["layers=3,4"]["lambda_4"]


def test_importance_filters_and_errors(api, monkeypatch):
    only = api.get("/api/experiments/drive/importance",
                   params={"layers": ["3,4"], "status": "SUCCEEDED"}).json()  # fmt: skip
    listed = api.get("/api/experiments/drive/trials", params={
        "layers": "3,4", "status": "SUCCEEDED", "limit": 1000}).json()  # fmt: skip
    assert only["n_trials"] == sum(t["val_error"] is not None for t in listed["items"])
    assert [g["scope"] for g in only["groups"]] == ["all trials", "layers=3,4"]

    bad = api.get("/api/experiments/drive/importance", params={"min_error": 9, "max_error": 1})
    assert bad.status_code == 422
    assert bad.json()["detail"] == "min_error=9.0 is above max_error=1.0: the range is empty"
    assert api.get("/api/experiments/nope/importance").status_code == 404
    assert api.get("/api/experiments/drive/importance", params={"layers": "3;4"}).status_code == 422
    # A patched constant reaches thread workers only: this app's heavy answers use threads.
    api.app.state.cache = ResponseCache(api.app.state.db, heavy_processes=False)
    monkeypatch.setattr(importance, "MAX_FANOVA_TRIALS", 50)
    slow = api.get("/api/experiments/drive/importance", params={"method": "fanova"})
    assert slow.status_code == 422 and "at most 50" in slow.json()["detail"]


def test_model_importance_spans_experiments(api):
    both = api.get("/api/models/mlp4/digits/importance").json()
    one = api.get("/api/experiments/drive/importance").json()
    assert both["n_trials"] > one["n_trials"]
    trials = api.get("/api/trials", params={"model": "mlp4", "dataset": "digits",
                                            "limit": 1000}).json()["items"]  # fmt: skip
    expected = direct_importance(trials, optuna.importance.PedAnovaImportanceEvaluator())
    assert both["groups"][0]["importances"] == pytest.approx(expected, rel=1e-9)
    missing = api.get("/api/models/mlp4/nope/importance")
    assert missing.status_code == 404 and "unknown dataset 'nope'" in missing.json()["detail"]


def test_routes_are_documented(api):
    paths = api.get("/openapi.json").json()["paths"]
    for p in ("/api/experiments/{nni_id}/importance", "/api/models/{model}/{dataset}/importance",
              "/api/experiments/{nni_id}/points"):  # fmt: skip
        assert p in paths
    params = {q["name"] for q in paths["/api/experiments/{nni_id}/importance"]["get"]["parameters"]}
    assert {"status", "layers", "regularizer", "budget", "min_error", "max_error",
            "method"} <= params  # fmt: skip
