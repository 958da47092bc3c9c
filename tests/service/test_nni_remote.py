"""NNI's remote training service for real: a throwaway sshd on 127.0.0.1 (its own host key, a
client key, this user with HOME in a temporary directory), a short MLP-4 search with
``platform: remote`` to it, then the service ingests it (REST while the manager runs, and the
nni.sqlite after it stopped, into a fresh database). Every trial's stored parameters are the set
it trained with: its metrics name that set, and training it again here with those parameters
gives the validation error it reported."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from nni_runner import SSHD, NNIExperiment, SSHServer, free_port, remote_config

from service.app import create_app
from service.settings import Settings
from storage.db import Database
from storage.queries import TrialSelection, list_trials
from storage.sync import sync_all
from trials.mlp import MLPParams, main

pytestmark = pytest.mark.nni

# What tiny_config's trialCommand passes on the command line (the rest comes from NNI).
COMMAND_PARAMS = {"model": "mlp4", "dataset": "digits", "epochs": 2, "lr": 0.1, "batch_size": 32,
                  "threads": 1, "probe_samples": 500}  # fmt: skip


@pytest.fixture
def sshd(tmp_path):
    if not SSHD.exists() or shutil.which("ssh-keygen") is None:
        why = "openssh-server is missing (.ci/run installs it: apt-get install openssh-server)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(why)
        pytest.skip(why)
    server = SSHServer(root=tmp_path / "ssh", home=tmp_path / "worker-home")
    server.start()
    yield server
    server.stop()


def test_remote_search_over_ssh_is_ingested_with_each_trials_own_parameters(sshd, tmp_path):
    exp = NNIExperiment(home=tmp_path / "nni-home", port=free_port())
    exp.home.mkdir()
    exp.create(remote_config(sshd, Path(sys.executable).parent, max_trials=3, epochs=2))
    try:
        exp.wait(timeout=400)
        assert exp.status == "DONE", exp.status
        assert len(exp.trials) == 3 and {t["status"] for t in exp.trials} == {"SUCCEEDED"}
        # The trials really ran on the "remote" machine: NNI's files are in the worker's HOME.
        worker_trials = sshd.home / "nni-experiments" / exp.id / "environments"
        for t in exp.trials:
            assert list(worker_trials.glob(f"*/trials/{t['trialJobId']}/trial.stdout"))
            assert t["logPath"].startswith("127.0.0.1:")

        settings = Settings(database_url=f"sqlite:///{tmp_path / 'live.sqlite'}",
                            nni_dir=exp.nni_dir, sync_interval=0)  # fmt: skip
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            report = client.post("/api/sync").json()
            assert report["errors"] == [] and report["inserted"] == 3
            assert client.get(f"/api/experiments/{exp.id}").json()["source"] == "rest"
            listed = client.get(f"/api/experiments/{exp.id}/trials", params={"limit": 100}).json()
    finally:
        exp.stop()

    ran = exp.ran_parameters()
    finals = {m["trialJobId"] for m in exp.metrics if m["type"] == "FINAL"}
    stored = {t["trial_job_id"]: t for t in listed["items"]}
    assert set(stored) == finals
    for job in finals:
        params = stored[job]["parameters"]
        assert params == ran[job], job
        # Trained again here with the stored parameters: the same validation error (seeded,
        # one thread, same data split), so these are the parameters the remote trial used.
        again = main(MLPParams(**COMMAND_PARAMS, **params))
        assert again["default"] == pytest.approx(stored[job]["val_error"], abs=1e-9), job

    # Stopped: the nni.sqlite NNI wrote for the remote run gives the same trials.
    fresh = Database(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    fresh.migrate()
    report = sync_all(fresh, exp.nni_dir)
    assert report.errors == [] and report.inserted == 3
    with fresh.session_scope() as s:
        again_listed = list_trials(s, TrialSelection(experiments=(exp.id,)), limit=100)
    assert {t.trial_job_id: t.parameters for t in again_listed.items} == {
        j: t["parameters"] for j, t in stored.items()
    }
    fresh.dispose()
