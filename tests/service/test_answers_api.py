"""The answers over REST: budgets, the confirmation plan, the warm-start YAML and the report."""

from __future__ import annotations

import yaml


def test_answers_name_their_budget_and_refuse_an_unknown_one(client):
    best = client.get("/api/models/mlp4/digits/best-config").json()
    assert best["budget"] in best["budgets"] and not best["confirmed"]
    bad = client.get("/api/models/mlp4/digits/compare", params={"budget": "epochs=999"})
    assert bad.status_code == 422 and "stored budgets" in bad.json()["detail"]
    for route in ("best-lambda", "recommendation", "compare"):
        body = client.get(f"/api/models/mlp4/digits/{route}").json()
        assert body["budget"] == best["budget"], route


def test_confirm_without_start_returns_the_plan_and_starts_nothing(client):
    r = client.post("/api/models/mlp4/digits/confirm", params={"top_k": 2, "seeds": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["started"] is False and body["nni_id"] is None
    plan = body["plan"]
    assert plan["n_trials"] == 9 and plan["seeds"] == [1000, 1001, 1002]
    config = yaml.safe_load(plan["yaml"])
    assert config["experimentName"].startswith("nsr-confirm mlp4/digits of ")
    assert config["tuner"] == {"name": "Batch"}
    assert client.get("/api/experiments").json()["total"] == 3  # nothing new
    bad = client.post("/api/models/mlp4/digits/confirm", params={"seeds": 1})
    assert bad.status_code == 422 and "seeds" in bad.text
    # Only a confirmation run can be extended: a search is refused, naming it; so is a bad id.
    search = client.get("/api/experiments").json()["items"][0]["nni_id"]
    refused = client.post("/api/models/mlp4/digits/confirm", params={"extend": search})
    assert refused.status_code == 422
    assert f"extend={search!r} is a search" in refused.json()["detail"]
    odd = client.post("/api/models/mlp4/digits/confirm", params={"extend": "../x y"})
    assert odd.status_code == 422 and "extend" in odd.text


def test_compare_sizes_seeds_for_a_given_gain_and_says_it_in_a_sentence(client):
    body = client.get("/api/models/mlp4/digits/compare", params={"min_gain": 0.5}).json()
    assert body["min_gain"] == 0.5 and body["summary"].endswith(".")
    d = body["test_error_difference"]
    assert d is not None and d["min_gain"] == 0.5 and d["looks"] == 1
    bad = client.get("/api/models/mlp4/digits/compare", params={"min_gain": -1})
    assert bad.status_code == 422 and "min_gain" in bad.text


def test_search_space_as_yaml_and_json(client):
    text = client.get("/api/models/mlp4/digits/search-space", params={"format": "yaml"})
    assert text.status_code == 200 and text.headers["content-type"].startswith("application/yaml")
    config = yaml.safe_load(text.text)
    assert config["searchSpace"]["layers"]["_type"] == "choice"
    as_json = client.get("/api/models/mlp4/digits/search-space").json()
    assert as_json["experiment"] == config
    assert client.get("/api/models/mlp4/digits/search-space?format=xml").status_code == 422


def test_report_in_three_formats(client):
    report = client.get("/api/report").json()
    assert {(g["model"], g["dataset"]) for g in report["groups"]} == {
        ("mlp4", "digits"), ("mlp6", "mnist")}  # fmt: skip
    mnist = next(g for g in report["groups"] if g["dataset"] == "mnist")
    assert mnist["table1"][0]["paper"] == "2.44 ± 0.09"  # the paper's MLP-6 vanilla, same data
    md = client.get("/api/report/markdown")
    assert md.headers["content-type"].startswith("text/markdown") and "| NSR |" in md.text
    csv_text = client.get("/api/report/csv").text
    assert csv_text.splitlines()[0].startswith("model,dataset,budget,table,row")
    assert client.get("/report").status_code == 200
