"""The README's main job end to end: service started, NNI search run, best λ printed from REST,
the top configurations confirmed over fresh seeds by a second NNI experiment, and the verdict."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from nni_runner import REPO, NNIExperiment, free_port, nni_env, tiny_config
from reference_stats import bootstrap_ci
from scipy import stats

from service.nni_launcher import nnictl

pytestmark = pytest.mark.nni


def get(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def check_warm_start_runs(port: int, home: Path) -> None:
    """The warm-start YAML passes NNI's own validation and runs under nnictl."""
    from nni.experiment.config import ExperimentConfig

    url = f"http://127.0.0.1:{port}/api/models/mlp4/digits/search-space?format=yaml"
    with urllib.request.urlopen(url, timeout=10) as resp:
        config = yaml.safe_load(resp.read())
    assert config["searchSpace"]["layers"]["_value"][0] == "none"
    path = home / "warm.yml"
    path.write_text(yaml.safe_dump({**config, "maxTrialNumber": 2}))
    ExperimentConfig.load(str(path)).validate()
    exp = NNIExperiment(home=home, port=free_port())
    exp.create({**config, "maxTrialNumber": 2})
    try:
        exp.wait(timeout=240)
    finally:
        exp.stop()
    assert [t["status"] for t in exp.trials] == ["SUCCEEDED"] * 2
    allowed = set(config["searchSpace"]["layers"]["_value"])
    for job in exp.trials:
        params = json.loads(job["hyperParameters"][0])["parameters"]
        assert params["layers"] in allowed


def test_quickstart_searches_confirms_and_prints_the_verdict_from_the_service(
    tmp_path: Path,
) -> None:
    config = tiny_config(max_trials=4, epochs=2)
    config["searchSpace"]["layers"]["_value"] = ["none", "4"]
    config_path = tmp_path / "quick.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = nni_env(tmp_path)  # HOME = tmp: NNI registry, service database and pid file inside it
    # With a write token, as a team member would have one in the environment: quickstart's
    # POST /api/sync must send it (it was a 401).
    env.update(NSR_PORT=str(port), NSR_SYNC_INTERVAL="0",
               NSR_API_TOKEN="quickstart-token-0123456789")  # fmt: skip
    env.pop("NSR_DATABASE_URL", None)
    pid_file = tmp_path / ".local/share/nsr-search/service.pid"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "service.quickstart", "--config", str(config_path),
             "--nni-port", str(free_port()), "--timeout", "300", "--confirm-top", "1",
             "--confirm-seeds", "3"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        text = out.stdout
        assert f"service: started at http://127.0.0.1:{port}/" in text
        assert "DONE, trials 4 succeeded (of 4)" in text
        assert "service synced 1 experiment(s): trials " in text and "sync error" not in text
        assert "search's best trial for mlp4 on digits [epochs=2 lr=0.1 batch_size=32]" in text
        assert "validation error" in text and "best λ per layer:" in text
        # 4 trials: too few for the fitted λ-response, and it says so instead of fitting.
        assert "fitted λ-response per layer subset" in text and "no fit (" in text
        assert f"results UI: http://127.0.0.1:{port}/" in text
        # The λ it printed is the service's: the REST answer names the same trial.
        best = get(port, "/api/models/mlp4/digits/best-config")
        assert f"(trial {best['trial']['trial_job_id']} of" in text
        search_id = best["trial"]["experiment"]
        # Confirmation: a second NNI experiment, 2 configurations (top 1 + vanilla) x 3 seeds.
        assert "DONE, trials 6 succeeded (of 6)" in text
        assert "service synced 2 experiment(s)" in text
        cmp = get(port, "/api/models/mlp4/digits/compare")
        assert cmp["confirmed"] and search_id not in cmp["confirmation_experiments"]
        [conf_id] = cmp["confirmation_experiments"]
        exp = get(port, f"/api/experiments/{conf_id}")
        assert exp["role"] == "confirmation" and exp["confirms"] == [search_id]
        trials = get(port, f"/api/experiments/{conf_id}/trials?limit=100")["items"]
        assert {t["seed"] for t in trials} == {1000, 1001, 1002}  # fresh: the search used 0, 1
        assert all(t["config_source"] == "report" for t in trials)
        # The verdict is SciPy's on exactly the confirmation trials' test errors.
        by_family: dict[str, list[float]] = {}
        for t in sorted(trials, key=lambda t: t["seed"]):
            by_family.setdefault(t["family"], []).append(t["test_error"])
        vanilla, nsr = by_family["vanilla"], by_family["nsr"]
        [verdict] = cmp["configurations"]
        assert cmp["vanilla"]["test_errors"] == vanilla and verdict["stats"]["test_errors"] == nsr
        d = verdict["versus_vanilla"]
        assert d["difference"] == pytest.approx(np.mean(vanilla) - np.mean(nsr))
        if np.ptp(vanilla + nsr) > 0:
            assert d["p_welch"] == pytest.approx(
                stats.ttest_ind(vanilla, nsr, equal_var=False).pvalue, nan_ok=True
            ) or d["p_welch"] is None
            low, high = bootstrap_ci(vanilla, nsr)
            assert d["ci_low"] == pytest.approx(low)
            assert d["ci_high"] == pytest.approx(high)
        assert f"verdict for mlp4 on digits [{cmp['budget']}], confirmed over fresh seeds" in text
        assert "better on" in text and f"of {d['paired_seeds']} seeds" in text
        # It ends with the verdict's sentence, the service's own.
        assert text.rstrip().splitlines()[-1] == f"answer: {cmp['summary']}"
        assert cmp["summary"].startswith(("Use NSR on layer 4", "No NSR configuration",
                                          "Vanilla beats"))  # fmt: skip
        check_warm_start_runs(port, tmp_path)
    finally:
        nnictl("stop", "--all", env=nni_env(tmp_path))
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
