"""Real NNI experiments whose trials start warm (``python -m trials.warm mlp ...``): they succeed
with the reports a cold start gives, Medianstop's stops work, and neither an assessor's stop nor
``nnictl stop`` leaves a process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from nni_runner import (
    REPO,
    NNIExperiment,
    final_reports,
    free_port,
    module_experiment,
    synced_service,
    tiny_config,
)

from trials import contract

pytestmark = pytest.mark.nni


def warm_command(config: dict[str, Any]) -> dict[str, Any]:
    command = config["trialCommand"].replace("-m trials.mlp ", "-m trials.warm mlp ", 1)
    assert command != config["trialCommand"]
    return {**config, "trialCommand": command}


def warm_config() -> dict[str, Any]:
    return warm_command(tiny_config(max_trials=4, epochs=2, concurrency=2))


def early_config() -> dict[str, Any]:
    from test_nni_early_stopping import early_stopping_config

    return warm_command(early_stopping_config())


warm_experiment = module_experiment("nni-warm", warm_config, timeout=480)
early_warm_experiment = module_experiment("nni-warm-early", early_config, timeout=480)


def processes_of(exp: NNIExperiment) -> list[str]:
    """Live processes of the experiment's trials: its warm server and the trials forked from it
    (their command line names the experiment) and its launchers (their environment does)."""
    marker, env_marker = f"--experiment\0{exp.id}\0".encode(), f"NNI_EXP_ID={exp.id}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = proc.joinpath("cmdline").read_bytes()
            environ = proc.joinpath("environ").read_bytes() if b"trials.warm" in cmdline else b""
        except OSError:
            continue
        if b"trials.warm" in cmdline and (marker in cmdline or env_marker in environ.split(b"\0")):
            words = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{proc.name}: {words}")
    return found


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return bool(predicate())


def test_warm_trials_succeed_with_the_reports_of_cold_ones(
    warm_experiment: NNIExperiment, tmp_path: Path
) -> None:
    exp = warm_experiment
    exp.assert_done(4)
    assert {t["status"] for t in exp.trials} == {"SUCCEEDED"}
    reports, params = final_reports(exp), exp.ran_parameters()
    assert len(reports) == 4
    assert list((exp.nni_dir / exp.id).glob("nsr-warm-*.sock")), "no warm server served them"
    # One trial again by hand, cold, with the parameters NNI gave it: the same report.
    job = sorted(reports)[0]
    flags = contract.parse_command(warm_config()["trialCommand"])
    assert flags.pop(contract.ENTRY) == "mlp"
    flags.update({k: str(v) for k, v in params[job].items()})
    argv = [arg for k, v in flags.items() for arg in (contract.flag_of(k), v)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    cold = subprocess.run([sys.executable, "-m", "trials.mlp", *argv], cwd=REPO, text=True,
                          capture_output=True, env={**env, "PYTHONPATH": str(REPO)},
                          timeout=300)  # fmt: skip
    assert cold.returncode == 0, cold.stderr
    by_hand, warm = json.loads(cold.stdout), dict(reports[job])
    by_hand.pop("epoch_seconds"), warm.pop("epoch_seconds")
    assert warm == by_hand
    # Storage reads the warm command's entry and flags as it reads a cold one's.
    with synced_service(exp, tmp_path) as (client, report):
        assert report["errors"] == [] and report["inserted"] == 4
        stored = client.get(f"/api/experiments/{exp.id}").json()
        assert stored["model"] == "mlp4" and stored["dataset"] == "digits"
        listed = client.get(f"/api/experiments/{exp.id}/trials", params={"limit": 1000}).json()
        assert {t["trial_job_id"]: t["parameters"] for t in listed["items"]} == params
        best = client.get("/api/models/mlp4/digits/best-config").json()["trial"]
        assert best["val_error"] == reports[best["trial_job_id"]]["default"]


def test_medianstop_stops_warm_trials_and_leaves_no_process(
    early_warm_experiment: NNIExperiment,
) -> None:
    from test_nni_early_stopping import STOPPED_STATUS, TRIALS

    exp = early_warm_experiment
    exp.assert_done(TRIALS)
    statuses = sorted(t["status"] for t in exp.trials)
    assert statuses.count("SUCCEEDED") >= 2 and STOPPED_STATUS in statuses, statuses
    # The stopped trials' processes are gone; only the idle server is left, until NNI stops.
    assert wait_until(lambda: all("trials.warm_server" in p for p in processes_of(exp)), 30), (
        processes_of(exp)
    )
    servers = processes_of(exp)
    assert len(servers) <= 1, servers


def test_nnictl_stop_leaves_no_process(tmp_path: Path) -> None:
    config = warm_command(tiny_config(max_trials=2, epochs=100_000, concurrency=2))
    config["trialCommand"] = config["trialCommand"].replace("--batch-size 32", "--batch-size 2")
    exp = NNIExperiment(home=tmp_path, port=free_port())
    exp.create(config)
    try:
        def running() -> bool:
            metrics = exp.rest("metric-data")
            return len({m["trialJobId"] for m in metrics}) == 2

        assert wait_until(running, 300), exp.rest("trial-jobs")
        assert len(processes_of(exp)) >= 5  # two launchers, the server, two trials
    finally:
        exp.stop()
    assert wait_until(lambda: not processes_of(exp), 60), processes_of(exp)
