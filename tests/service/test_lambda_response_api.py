"""GET …/lambda-response on synthetic searches whose λ on layer 4 matters (best at λ = 1)."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from synthetic_nni import make_nni_dir

from service.app import create_app
from service.settings import Settings


@pytest.fixture
def lam_client(tmp_path, db_url):
    nni_dir = make_nni_dir(tmp_path, {
        "expL": {"n_trials": 300, "model": "mlp4", "dataset": "digits", "seed": 5,
                 "lambda_effect": {4: 1.0}},
    })  # fmt: skip
    settings = Settings(database_url=db_url, nni_dir=nni_dir, sync_interval=0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync").status_code == 200
        yield c


def test_lambda_response_recommends_near_the_true_optimum(lam_client):
    r = lam_client.get("/api/models/mlp4/digits/lambda-response")
    assert r.status_code == 200, r.text
    body = r.json()
    by_layers = {tuple(x["layers"]): x for x in body["responses"]}
    four = by_layers[(4,)]
    assert four["fitted"] and four["n_trials"] >= 20
    assert abs(math.log10(four["recommended"]["4"])) < 0.5
    lo, hi = four["range"]["4"]
    assert lo <= 1.0 <= hi
    pair = by_layers[(3, 4)]
    assert (
        len(pair["mean"]) == len(pair["grid"]["3"]) * len(pair["grid"]["4"]) or not pair["fitted"]
    )
    bad = lam_client.get("/api/models/mlp4/nope/lambda-response")
    assert bad.status_code == 404
