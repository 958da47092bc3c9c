"""A shared experiment file never runs its own command: two hostile copies of a real search (its
trial command, and its tuner, turned into shell commands; its results shrunk so they rank first)
are imported; confirming them (start=true) and warm-starting them is refused with the reason, and
nothing runs. A legitimate search in the same database still confirms, under NNI, for real."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nni_runner import NNIExperiment, nni_env

from service.app import create_app
from service.nni_launcher import nnictl
from service.settings import Settings

pytestmark = pytest.mark.nni

TOKEN = "hostile-plans-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def hostile_copy(src: Path, dst: Path, nni_id: str, dataset: str, **profile: object) -> Path:
    """``src`` with ``profile`` written over its ExperimentProfile, a new id, and final results
    that rank first, in their own (mlp4, ``dataset``) group."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    conn = sqlite3.connect(dst)
    for rowid, text in conn.execute("select rowid, params from ExperimentProfile").fetchall():
        conn.execute("update ExperimentProfile set params = ?, id = ? where rowid = ?",
                     (json.dumps({**json.loads(text), **profile}), nni_id, rowid))  # fmt: skip
    for rowid, data in conn.execute("select rowid, data from MetricData where type = 'FINAL'"):
        body = json.loads(json.loads(data))
        body["default"] = 0.01
        body["config"]["dataset"] = dataset
        conn.execute("update MetricData set data = ? where rowid = ?",
                     (json.dumps(json.dumps(body)), rowid))  # fmt: skip
    conn.commit()
    conn.close()
    return dst


def wait_done(nni_url: str, timeout: float) -> list[dict]:
    base = nni_url.rstrip("/") + "/api/v1/nni"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/check-status", timeout=10) as r:
            status = json.loads(r.read())["status"]
        if status in ("DONE", "STOPPED", "ERROR"):
            with urllib.request.urlopen(f"{base}/trial-jobs", timeout=10) as r:
                return json.loads(r.read())
        time.sleep(1.0)
    raise TimeoutError(f"{nni_url} still running after {timeout:.0f} s")


def test_hostile_files_never_run_and_a_legitimate_search_still_confirms(
    nni_experiment: NNIExperiment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinels = {"command": tmp_path / "x-command", "tuner": tmp_path / "y-tuner"}
    command = (f"touch {sentinels['command']}; echo python -m trials.mlp --model mlp4 "
               "--dataset digits")  # fmt: skip
    tuner = {"className": "subprocess.Popen",
             "classArgs": {"args": f"touch {sentinels['tuner']}", "shell": True}}  # fmt: skip
    files = {
        "fashion-mnist": hostile_copy(nni_experiment.sqlite_path, tmp_path / "a" / "nni.sqlite",
                                      "evilCmd", "fashion-mnist", trialCommand=command),
        "mnist": hostile_copy(nni_experiment.sqlite_path, tmp_path / "b" / "nni.sqlite",
                              "evilTuner", "mnist", tuner=tuner),
    }  # fmt: skip
    home = tmp_path / "home"  # the confirmation's NNI experiment and plan live here
    home.mkdir()
    for key, value in nni_env(home).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'nsr.sqlite'}", api_token=TOKEN,
                        nni_dir=nni_experiment.nni_dir, sync_interval=0)  # fmt: skip
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        assert c.post("/api/sync", headers=AUTH).json()["errors"] == []
        for path in files.values():
            r = c.post("/api/import", content=path.read_bytes(),
                       headers={**AUTH, "Content-Type": "application/octet-stream"})  # fmt: skip
            assert r.status_code == 200, r.text
        why = {"fashion-mnist": "stored trial command is not a plain",
               "mnist": "'subprocess.Popen' is not one this installation runs"}  # fmt: skip
        for dataset, reason in why.items():
            r = c.post(f"/api/models/mlp4/{dataset}/confirm", params={"start": "true"},
                       headers=AUTH)  # fmt: skip
            assert r.status_code == 422 and reason in r.json()["detail"], r.text
            w = c.get(f"/api/models/mlp4/{dataset}/search-space", params={"format": "yaml"})
            assert w.status_code == 422 and reason in w.json()["detail"], w.text
        r = c.post("/api/models/mlp4/digits/confirm",
                   params={"start": "true", "top_k": 1, "seeds": 2}, headers=AUTH)  # fmt: skip
        assert r.status_code == 200, r.text
        started = r.json()
        try:
            jobs = wait_done(started["nni_url"], timeout=300)
        finally:
            nnictl("stop", started["nni_id"], env=nni_env(home))
    assert len(jobs) == started["plan"]["n_trials"] == 4
    assert all(j["status"] == "SUCCEEDED" for j in jobs), jobs
    assert started["plan"]["experiment"]["trialCommand"].startswith(
            "python -m trials.warm mlp "  # this installation's launcher, local: warm
        )
    assert not any(p.exists() for p in sentinels.values())
