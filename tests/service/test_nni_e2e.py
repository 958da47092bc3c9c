"""Against a real NNI experiment (the session fixture in tests/conftest.py)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from nni_runner import decode
from synthetic_nni import dump_tables

from service.app import create_app
from service.settings import Settings
from storage.db import Database
from storage.sync import sync_all

pytestmark = pytest.mark.nni


def nni_best_trial(exp, chosen: str):
    """NNI's own best trial (lowest final 'default', what the tuner minimizes) from its REST data:
    ``chosen`` (the service's pick), which must be one of the trials tied for the lowest, since
    errors come in whole images and equal runs tie."""
    finals = {m["trialJobId"]: decode(m["data"]) for m in exp.metrics if m["type"] == "FINAL"}
    lowest = min(f["default"] for f in finals.values())
    tied = {j for j, f in finals.items() if f["default"] == lowest}
    assert chosen in tied, (chosen, tied)
    best_id = chosen
    job = next(t for t in exp.trials if t["trialJobId"] == best_id)
    periodic = sorted((m["sequence"], decode(m["data"])) for m in exp.metrics
                      if m["trialJobId"] == best_id and m["type"] == "PERIODICAL")  # fmt: skip
    return job, finals[best_id], [v for _, v in periodic]


def semantic(db):
    rows = dump_tables(db.engine)["trials"]
    with db.engine.connect() as conn:
        cols = [c for c in conn.exec_driver_sql("SELECT * FROM trials LIMIT 0").keys()]
    i_job, i_fp = cols.index("trial_job_id"), cols.index("fingerprint")
    return sorted((r[i_job], r[i_fp]) for r in rows)


def test_service_matches_nni_then_resync_then_fresh_db_from_sqlite(nni_experiment, tmp_path):
    exp = nni_experiment
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'live.sqlite'}",
                        nni_dir=exp.nni_dir, sync_interval=0)  # fmt: skip
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        report = client.post("/api/sync").json()
        assert report["errors"] == [] and report["inserted"] == len(exp.trials)
        stored = client.get(f"/api/experiments/{exp.id}").json()
        if not exp.stopped:  # manager still up: read through its REST API
            assert stored["source"] == "rest"
        assert stored["model"] == "mlp4" and stored["dataset"] == "digits"

        # What each trial ran: the parameter set its own metrics name (not NNI's trial record).
        ran = exp.ran_parameters()
        listed = client.get(f"/api/experiments/{exp.id}/trials", params={"limit": 1000}).json()
        assert {t["trial_job_id"]: t["parameters"] for t in listed["items"]} == ran

        best = client.get("/api/models/mlp4/digits/best-config").json()["trial"]
        job, final, curve = nni_best_trial(exp, best["trial_job_id"])
        params = ran[job["trialJobId"]]
        assert best["experiment"] == exp.id
        assert best["trial_job_id"] == job["trialJobId"]
        assert best["status"] == job["status"] == "SUCCEEDED"
        assert best["sequence_id"] == job["sequenceId"]
        assert best["parameters"] == params
        assert best["layers"] == params["layers"]
        assert best["seed"] == params.get("seed", 0)
        assert best["val_error"] == final["default"]
        assert best["test_error"] == final["test_error"]
        assert best["best_epoch"] == final["best_epoch"]
        assert best["epoch_seconds"] == final["epoch_seconds"]
        # The flat numbers; the nested config is the storage side's to read (trials/contract.py).
        numbers = {k: float(v) for k, v in final.items() if not isinstance(v, dict)}
        assert best["final_metrics"] == numbers
        assert best["intermediate"] == curve
        assert (best["start_time"], best["end_time"]) == (job["startTime"], job["endTime"])
        active = (
            set() if params["layers"] == "none" else {int(k) for k in params["layers"].split(",")}
        )
        for row in best["layer_rows"]:
            k = row["layer"]
            assert row["var_end"] == final[f"var_{k}"] and row["var_init"] == final[f"var_{k}_init"]
            assert row["lam"] == (params[f"lambda_{k}"] if k in active else 0.0)

        before = dump_tables(app.state.db.engine)
        again = client.post("/api/sync").json()
        assert again["inserted"] == again["updated"] == 0
        assert dump_tables(app.state.db.engine)["trials"] == before["trials"]
        assert dump_tables(app.state.db.engine)["trial_layers"] == before["trial_layers"]
        live = semantic(app.state.db)

    exp.stop()
    fresh = Database(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    fresh.migrate()
    report = sync_all(fresh, exp.nni_dir)  # no NNI process: reads db/nni.sqlite read-only
    assert report.errors == [] and report.inserted == len(exp.trials)
    assert semantic(fresh) == live
    with fresh.engine.connect() as conn:
        source, status = conn.exec_driver_sql("SELECT source, status FROM experiments").one()
    assert (source, status) == ("sqlite", "STOPPED")
    fresh.dispose()
