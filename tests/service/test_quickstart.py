"""The README's main job end to end: service started, NNI search run, best λ printed from REST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from nni_runner import REPO, free_port, nni_env, tiny_config

from service.quickstart import nnictl

pytestmark = pytest.mark.nni


def test_quickstart_runs_the_search_and_prints_the_best_lambda_from_the_service(
    tmp_path: Path,
) -> None:
    config = tiny_config(max_trials=3, epochs=2)
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
             "--nni-port", str(free_port()), "--timeout", "300"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=420,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        text = out.stdout
        assert f"service: started at http://127.0.0.1:{port}/" in text
        assert "DONE, trials 3 succeeded (of 3)" in text
        assert "service synced 1 experiment(s): trials " in text and "sync error" not in text
        assert "best config for mlp4 on digits: layers=" in text
        assert "validation error" in text and "best λ per layer:" in text
        assert f"results UI: http://127.0.0.1:{port}/" in text
        # The λ it printed is the service's: the REST answer names the same trial.
        url = f"http://127.0.0.1:{port}/api/models/mlp4/digits/best-config"
        with urllib.request.urlopen(url, timeout=10) as resp:
            best = json.loads(resp.read())
        assert f"(trial {best['trial']['trial_job_id']} of" in text
    finally:
        nnictl("stop", "--all", env=nni_env(tmp_path))
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
