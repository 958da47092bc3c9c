"""REST API over a synced synthetic search: routes, filters, paging, errors, CSV, auth."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from synthetic_nni import make_nni_dir

from service.app import create_app
from service.settings import Settings


def test_openapi_lists_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    model_routes = ["best-config", "best-lambda", "recommendation", "compare"]
    expected = [
        "/api/experiments",
        "/api/experiments/{nni_id}",
        "/api/trials",
        "/api/trials.csv",
        "/api/sync",
    ] + [f"/api/models/{{model}}/{{dataset}}/{r}" for r in model_routes]
    for p in expected:  # fmt: skip
        assert p in paths
    assert client.get("/docs").status_code == 200


def test_experiments_list_and_get(client):
    page = client.get("/api/experiments", params={"model": "mlp4"}).json()
    assert page["total"] == 2 and {e["nni_id"] for e in page["items"]} == {"expA", "expB"}
    one = client.get("/api/experiments", params={"limit": 1, "offset": 1}).json()
    assert one["total"] == 3 and len(one["items"]) == 1
    exp = client.get("/api/experiments/expA").json()
    assert exp["n_trials"] == 80 and exp["trial_command"].startswith("python -m trials.mlp")
    r = client.get("/api/experiments/nope")
    assert r.status_code == 404 and r.json()["detail"] == "unknown experiment 'nope'"


def test_trials_filters_sorting_and_paging(client):
    page = client.get("/api/trials", params={"model": "mlp4", "dataset": "digits",
                                             "limit": 1000}).json()  # fmt: skip
    assert page["total"] == 130
    vals = [t["val_error"] for t in page["items"]]
    present = [v for v in vals if v is not None]
    assert present == sorted(present) and vals[len(present) :] == [None] * (130 - len(present))
    by_test = {"sort": "test_error", "order": "desc", "limit": 5}
    desc = client.get("/api/experiments/expA/trials", params=by_test).json()
    tests = [t["test_error"] for t in desc["items"]]
    assert tests == sorted(tests, reverse=True) and desc["total"] == 80
    second = client.get("/api/trials", params={"limit": 10, "offset": 10}).json()["items"]
    first20 = client.get("/api/trials", params={"limit": 20}).json()["items"]
    assert [t["trial_job_id"] for t in second] == [t["trial_job_id"] for t in first20[10:]]
    failed = client.get("/api/trials", params={"status": "FAILED"}).json()
    assert failed["total"] > 0 and all(t["status"] == "FAILED" for t in failed["items"])
    vanilla = client.get("/api/trials", params={"layers": "none", "limit": 1000}).json()["items"]
    assert vanilla and all(t["parameters"]["layers"] == "none" for t in vanilla)
    t = client.get(f"/api/experiments/expA/trials/{vanilla[0]['trial_job_id']}")
    assert t.status_code == 200 or vanilla[0]["experiment"] != "expA"
    assert client.get("/api/experiments/expA/trials/T99999").json()["detail"] == (
        "unknown trial 'T99999' in experiment 'expA'")  # fmt: skip
    # The experiment's own trial list takes the same filters, inside that experiment only.
    own = client.get("/api/experiments/expA/trials", params={"layers": "none", "limit": 1000})
    rows = own.json()["items"]
    assert rows and {(t["experiment"], t["parameters"]["layers"]) for t in rows} == {
        ("expA", "none")}  # fmt: skip
    assert len(rows) < len(vanilla)  # the other experiments' vanilla trials are left out
    assert client.get("/api/experiments/nope/trials").status_code == 404


def test_bad_query_values_are_422_naming_the_value(client):
    for params, name in [({"limit": 0}, "limit"), ({"limit": 5000}, "limit"),
                         ({"offset": -1}, "offset"), ({"sort": "lambda"}, "sort"),
                         ({"order": "up"}, "order"), ({"layers": "3;4"}, "layers"),
                         ({"status": "DONE"}, "status")]:  # fmt: skip
        r = client.get("/api/trials", params=params)
        assert r.status_code == 422, params
        detail = r.json()["detail"][0]
        assert detail["loc"] == ["query", name] and detail["msg"]


def test_model_endpoints_and_404s(client):
    best = client.get("/api/models/mlp4/digits/best-config").json()
    trials = client.get("/api/trials", params={"model": "mlp4", "dataset": "digits",
                                               "limit": 1}).json()["items"]  # fmt: skip
    assert best["trial"]["trial_job_id"] == trials[0]["trial_job_id"]
    assert best["trial"]["val_error"] == trials[0]["val_error"]
    rec = client.get("/api/models/mlp4/digits/recommendation").json()
    means = [r["mean_var"] for r in rec["variance_ranking"]]
    assert means == sorted(means, reverse=True)
    assert rec["recommended_layer"] == rec["variance_ranking"][0]["layer"]
    lam = client.get("/api/models/mlp4/digits/best-lambda").json()
    assert {r["layer"] for r in lam["layers"]} == {2, 3, 4}
    assert all(r["lam"] > 0 for r in lam["layers"])
    cmp = client.get("/api/models/mlp4/digits/compare").json()
    assert cmp["vanilla"]["layers"] == "none" and cmp["nsr"]["layers"] != "none"
    assert cmp["val_error_gain"] == cmp["vanilla"]["val_error_mean"] - cmp["nsr"]["val_error_mean"]
    models = client.get("/api/models").json()
    assert {(m["model"], m["dataset"], m["n_trials"]) for m in models} == {
        ("mlp4", "digits", 130), ("mlp6", "mnist", 30)}  # fmt: skip
    r = client.get("/api/models/resnet/digits/best-config")
    assert r.status_code == 404 and "unknown model 'resnet'" in r.json()["detail"]
    r = client.get("/api/models/mlp4/mnist/compare")
    assert r.status_code == 404 and "unknown dataset 'mnist' for model 'mlp4'" in r.json()["detail"]


def test_csv_export(client):
    r = client.get("/api/trials.csv", params={"experiment": "expC"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 30 and {"param.lambda_4", "metric.var_6", "val_error"} <= set(rows[0])
    api = {t["trial_job_id"]: t for t in client.get(
        "/api/trials", params={"experiment": "expC", "limit": 100}).json()["items"]}  # fmt: skip
    for row in rows:
        want = api[row["trial_job_id"]]["val_error"]
        assert (float(row["val_error"]) if row["val_error"] else None) == want


def test_sync_is_idempotent_over_http(client):
    again = client.post("/api/sync").json()
    assert again["errors"] == [] and again["inserted"] == again["updated"] == 0


def test_sync_needs_the_token_when_one_is_configured(settings):
    settings = settings.model_copy(update={"api_token": SecretStr("s3cret")})
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync").status_code == 401
        assert c.post("/api/sync", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = c.post("/api/sync", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.json()["inserted"] == 160
        assert c.get("/api/experiments").status_code == 200  # reads stay open


def test_database_outage_is_503(tmp_path, synthetic_nni_dir):
    # SQLite only: the outage is made by turning the database file into a directory.
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'service.sqlite'}",
                        nni_dir=synthetic_nni_dir, sync_interval=0)  # fmt: skip
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        app.state.db.engine.dispose()
        (tmp_path / "service.sqlite").unlink()
        (tmp_path / "service.sqlite").mkdir()  # the file is now a directory: cannot open
        r = c.get("/api/experiments")
        assert r.status_code == 503 and "database error" in r.json()["detail"]


def test_settings_defaults():
    s = Settings(_env_file=None)
    assert s.host == "127.0.0.1" and s.port == 8765 and s.sync_interval > 0
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("nsr.sqlite")
    assert s.nni_dir.name == "nni-experiments"


def test_cached_answers_follow_new_data(client, synthetic_nni_dir):
    """The model endpoints are cached; an ingest that changes results must show at once."""
    from synthetic_nni import write_nni_sqlite, write_registry

    before = client.get("/api/models/mlp4/digits/best-config").json()
    assert client.get("/api/models/mlp4/digits/best-config").json() == before  # a cache hit
    path = synthetic_nni_dir / "expD" / "db" / "nni.sqlite"
    write_nni_sqlite(path, "expD", n_trials=1, seed=11)
    import json as _json
    import sqlite3  # noqa: E401

    conn = sqlite3.connect(path)
    conn.execute("UPDATE MetricData SET data = ? WHERE type = 'FINAL'",
                 (_json.dumps(_json.dumps({"default": 0.5, "test_error": 0.7})),))  # fmt: skip
    conn.commit()
    conn.close()
    write_registry(synthetic_nni_dir, {e: {} for e in ("expA", "expB", "expC", "expD")})
    assert client.post("/api/sync").json()["inserted"] == 1
    after = client.get("/api/models/mlp4/digits/best-config").json()
    assert after["trial"]["experiment"] == "expD" and after["trial"]["val_error"] == 0.5
    assert after["n_trials"] == before["n_trials"] + 1


def test_docs_work_offline(client):
    """/docs references only this server's assets (no CDN), and they are served."""
    import re

    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert urls and all(u.startswith("/") for u in urls), urls
    assert "cdn" not in page.text.lower()
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200 and len(r.content) > 500, url
    assert client.get("/redoc").status_code == 404  # ReDoc needs a CDN: off


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_model_page_says_what_the_layer_rule_needs_without_vanilla_trials(db_url, tmp_path):
    # Seed 1's three synthetic trials all put NSR on layer 2: no vanilla variance to rank.
    nni_dir = make_nni_dir(tmp_path, {"expN": {"n_trials": 3, "model": "mlp4",
                                               "dataset": "toy", "seed": 1}})  # fmt: skip
    settings = Settings(database_url=db_url, nni_dir=nni_dir, sync_interval=0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync").json()["inserted"] == 3
        rec = c.get("/api/models/mlp4/toy/recommendation").json()
        assert rec["recommended_layer"] is None and rec["empirical_best_layer"] is not None
        html = c.get("/models/mlp4/toy").text
    assert "no answer yet</strong>: it needs vanilla trials" in html
    assert f"<strong>layer {rec['empirical_best_layer']}</strong>" in html
