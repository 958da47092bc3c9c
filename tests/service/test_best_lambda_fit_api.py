"""GET …/best-lambda: beside the best single trial per layer, per NSR layer subset the fitted
λ-response's recommended λ, near-optimal range, trials and noise; null with a reason below the
minimum. On synthetic searches whose λ on layer 4 matters (best at λ = 1)."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from synthetic_nni import make_nni_dir

from analysis.lambda_response import MIN_TRIALS
from service.app import create_app
from service.settings import Settings


@pytest.fixture
def fit_client(tmp_path, db_url):
    nni_dir = make_nni_dir(tmp_path, {
        "expL": {"n_trials": 300, "model": "mlp4", "dataset": "digits", "seed": 5,
                 "lambda_effect": {4: 1.0}},
        # Too few trials per subset for a fit: ~4 each of "2", "3", "4" and "3,4".
        "expS": {"n_trials": 20, "model": "mlp4", "dataset": "tiny", "seed": 6},
    })  # fmt: skip
    settings = Settings(database_url=db_url, nni_dir=nni_dir, sync_interval=0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync").status_code == 200
        yield c


def test_best_lambda_adds_the_fit_per_layer_subset(fit_client):
    r = fit_client.get("/api/models/mlp4/digits/best-lambda")
    assert r.status_code == 200, r.text
    body = r.json()
    # The best single trial per layer is still there.
    assert [x["layer"] for x in body["layers"]] == [2, 3, 4]
    assert all(x["lam"] > 0 and x["n_trials"] > 0 for x in body["layers"])
    subsets = {tuple(x["layers"]): x for x in body["subsets"]}
    assert set(subsets) == {(2,), (3,), (4,), (3, 4)}
    four = subsets[(4,)]
    assert four["reason"] is None and four["n_trials"] >= 20
    assert four["n_trials"] <= next(x["n_trials"] for x in body["layers"] if x["layer"] == 4)
    assert abs(math.log10(four["recommended"]["4"])) < 0.5  # the true optimum is λ = 1
    lo, hi = four["range"]["4"]
    assert lo <= four["recommended"]["4"] <= hi and lo <= 1.0 <= hi
    assert 0 < four["noise"] < 2 and four["best_fitted_error"] > 0
    pair = subsets[(3, 4)]
    assert set(pair["recommended"]) == set(pair["range"]) == {"3", "4"}
    # The same fit as …/lambda-response's (one cache entry for both).
    curve = fit_client.get("/api/models/mlp4/digits/lambda-response").json()
    fitted = {tuple(x["layers"]): x for x in curve["responses"]}
    assert fitted[(4,)]["recommended"] == four["recommended"]
    assert fitted[(4,)]["noise_sd"] == four["noise"]
    # The fit is of full-budget trials whatever include_partial says.
    wide = fit_client.get("/api/models/mlp4/digits/best-lambda?include_partial=true").json()
    assert wide["subsets"] == body["subsets"]


def test_below_the_minimum_the_fit_is_null_with_a_reason(fit_client):
    body = fit_client.get("/api/models/mlp4/tiny/best-lambda").json()
    assert body["subsets"]
    for s in body["subsets"]:
        assert s["n_trials"] < MIN_TRIALS * len(s["layers"])
        assert s["recommended"] is None and s["range"] is None and s["noise"] is None
        assert f"needs {MIN_TRIALS * len(s['layers'])}" in s["reason"]
    assert body["layers"]  # the single best trials are still answered
