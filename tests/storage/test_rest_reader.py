"""A running experiment read through its manager's REST API (a small fake NNI manager on
loopback): parameter sets reconciled as for a stopped one, and an unchanged experiment never
rewritten on the next sync pass."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from storage import queries as q
from storage.db import Database
from storage.nni.records import RegistryEntry
from storage.nni.rest import read_rest
from storage.sync import sync_all


def _metric(job: str, pid: int, kind: str, seq: int, value: Any) -> dict[str, Any]:
    return {"trialJobId": job, "parameterId": str(pid), "type": kind, "sequence": seq,
            "data": json.dumps(json.dumps(value)), "timestamp": 1}  # fmt: skip


SETS = [{"layers": "4", "lambda_4": 0.5, "seed": 0}, {"layers": "none", "seed": 1},
        {"layers": "3", "lambda_3": 2.0, "seed": 2}]  # fmt: skip
CMD = "python -m trials.mlp --model mlp4 --dataset digits --epochs 2 --lr 0.1"


def manager_state() -> dict[str, Any]:
    """T0 and T1 were started together and NNI swapped their sets: each trial's metrics carry
    the parameter id it really trained with (T0 trained set 1, T1 set 0)."""
    jobs = [
        {"trialJobId": f"T{i}", "status": "SUCCEEDED", "sequenceId": i, "startTime": 1,
         "endTime": 2, "hyperParameters": [json.dumps({"parameter_id": i, "parameters": SETS[i]})]}
        for i in range(3)
    ]  # fmt: skip
    trained = {"T0": 1, "T1": 0, "T2": 2}
    metrics = []
    for job, pid in trained.items():
        err = 5.0 + pid
        metrics.append(_metric(job, pid, "PERIODICAL", 0, err + 1))
        metrics.append(_metric(job, pid, "FINAL", 0, {"default": err, "test_error": err + 0.5}))
    profile = {"id": "live1", "startTime": 1, "params": {
        "experimentName": "live", "trialCommand": CMD, "searchSpace": {}}}  # fmt: skip
    return {"check-status": {"status": "RUNNING"}, "experiment": profile, "trial-jobs": jobs,
            "metric-data": metrics}  # fmt: skip


@pytest.fixture
def manager() -> Iterator[int]:
    state = manager_state()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            key = self.path.removeprefix("/api/v1/nni/")
            body = json.dumps(state[key]).encode() if key in state else b"{}"
            self.send_response(200 if key in state else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def entry(port: int) -> RegistryEntry:
    return RegistryEntry("live1", port, "RUNNING", "live", None, None, 1, None)


def test_rest_reader_gives_each_trial_the_set_its_metrics_name(manager: int) -> None:
    trials = {t.trial_job_id: t for t in read_rest(entry(manager), "RUNNING").trials}
    assert trials["T0"].parameters == SETS[1]
    assert trials["T1"].parameters == SETS[0]
    assert trials["T2"].parameters == SETS[2]


def test_unchanged_running_experiment_is_not_rewritten(manager: int, tmp_path) -> None:
    nni_dir = tmp_path / "nni"
    nni_dir.mkdir()
    registry = {"live1": {"port": manager, "status": "RUNNING", "experimentName": "live",
                          "logDir": str(nni_dir), "startTime": 1}}  # fmt: skip
    (nni_dir / ".experiment").write_text(json.dumps(registry))
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    db.migrate()
    first = sync_all(db, nni_dir)
    assert first.errors == [] and first.inserted == 3
    with db.session_scope() as s:
        version = q.data_version(s)
        vanilla = q.get_trial(s, "live1", "T0")
    assert vanilla.layers == "none" and vanilla.val_error == 6.0  # T0 trained set 1 (vanilla)
    second = sync_all(db, nni_dir)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 3)
    with db.session_scope() as s:
        assert q.data_version(s) == version  # no answer cache is cleared for nothing
    db.dispose()
