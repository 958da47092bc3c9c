"""The smoke subset `make check-python` runs on a freshly built venv (see .ci/check-python).

    python .ci/smoke.py WORKDIR

One trial of each family (MLP on digits, CNN and GNN on synthetic data), a 2-trial real NNI search
(nnictl in a temporary HOME, as the tests run it), ``python -m service sync`` of that search into a
fresh SQLite, and the main REST answers over it. Each step prints one line with its time; the first
failure prints what went wrong and exits 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This checkout first, and tests/nni_runner: the suite's way of running nnictl.
sys.path[:0] = [str(REPO), str(REPO / "tests")]

TRIALS = {
    "mlp": ["trials.mlp", "--model", "mlp4", "--dataset", "digits", "--epochs", "2", "--lr", "0.1",
            "--batch-size", "32", "--layers", "4", "--lambda-4", "1.0", "--threads", "1"],
    "cnn": ["trials.cnn", "--model", "resnet18", "--synthetic", "64", "--max-batches", "2",
            "--epochs", "1", "--threads", "1"],
    "gnn": ["trials.gnn", "--model", "sage2", "--synthetic", "200", "--epochs", "3",
            "--layers", "1", "--threads", "1"],
}  # fmt: skip


class SmokeError(Exception):
    pass


def step(name: str, fn: Callable[[], str]) -> None:
    start = time.monotonic()
    try:
        detail = fn()
    except Exception as exc:  # noqa: BLE001 - any failure is the smoke's answer
        print(f"FAIL {name} ({time.monotonic() - start:.0f} s): {exc}", flush=True)
        sys.exit(1)
    print(f"ok   {name} ({time.monotonic() - start:.0f} s): {detail}", flush=True)


def run_trial(family: str) -> str:
    out = subprocess.run([sys.executable, "-m", *TRIALS[family]], capture_output=True, text=True,
                         timeout=600, cwd=REPO)  # fmt: skip
    if out.returncode != 0:
        raise SmokeError(f"exit {out.returncode}: {out.stderr.strip()[-800:]}")
    if "kernel could not be built" in out.stderr:
        raise SmokeError(f"ran without the C++ kernel: {out.stderr.strip()[-400:]}")
    final = json.loads(out.stdout)
    return f"validation error {final['default']:.2f} %"


def main(workdir: Path) -> None:
    from fastapi.testclient import TestClient
    from nni_runner import final_reports, finished_experiment, tiny_config

    from service.app import create_app
    from service.settings import Settings

    workdir.mkdir(parents=True, exist_ok=True)
    for family in TRIALS:
        step(f"trial {family}", lambda family=family: run_trial(family))

    home = workdir / "nni-home"
    home.mkdir(exist_ok=True)
    db = workdir / "nsr.sqlite"
    db.unlink(missing_ok=True)
    config = tiny_config(max_trials=2, epochs=2, concurrency=2)
    config["experimentName"] = "nsr-check-python"
    ran: list[Any] = []

    def search() -> str:
        with finished_experiment(home, config, timeout=600) as exp:
            ran.append(exp)
            statuses = sorted(t["status"] for t in exp.trials)
            if exp.status != "DONE" or statuses != ["SUCCEEDED", "SUCCEEDED"]:
                logs = "\n".join(exp.trial_log(t["trialJobId"]) for t in exp.trials)
                raise SmokeError(f"NNI {exp.status}, trials {statuses}\n{logs[-1500:]}")
            if len(final_reports(exp)) != 2:
                raise SmokeError(f"final reports: {final_reports(exp)}")
            return f"NNI {exp.id} DONE, 2 trials SUCCEEDED"

    step("NNI search (2 trials)", search)
    exp = ran[0]

    env = dict(os.environ, NSR_DATABASE_URL=f"sqlite:///{db}", NSR_NNI_DIR=str(exp.nni_dir))

    def sync() -> str:
        out = subprocess.run([sys.executable, "-m", "service", "sync"], env=env,
                             capture_output=True, text=True, timeout=300, cwd=REPO)  # fmt: skip
        if out.returncode != 0:
            raise SmokeError(f"exit {out.returncode}: {(out.stdout + out.stderr).strip()[-800:]}")
        return (out.stdout.strip() or out.stderr.strip()).splitlines()[-1]

    step("python -m service sync", sync)

    settings = Settings(database_url=f"sqlite:///{db}", nni_dir=exp.nni_dir, sync_interval=0)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:

        def get(path: str) -> Any:
            resp = client.get(path)
            if resp.status_code != 200:
                raise SmokeError(f"GET {path}: {resp.status_code} {resp.text[:300]}")
            return resp.json()

        def experiments() -> str:
            items = get("/api/experiments")["items"]
            if not any(e["nni_id"] == exp.id for e in items):
                raise SmokeError(f"{exp.id} not listed: {str(items)[:300]}")
            return f"{len(items)} experiment(s), {exp.id} among them"

        def best_config() -> str:
            body = get("/api/models/mlp4/digits/best-config")
            if body["n_trials"] != 2:
                raise SmokeError(f"n_trials {body['n_trials']}, not 2: {str(body)[:300]}")
            return f"best of {body['n_trials']} trials: {json.dumps(body['trial'])[:120]}..."

        def best_lambda() -> str:
            body = get("/api/models/mlp4/digits/best-lambda")
            return f"{len(body['layers'])} layer(s) with a best λ"

        def compare() -> str:
            body = get("/api/models/mlp4/digits/compare")
            return f"confirmed={body['confirmed']}, {len(body['configurations'])} configuration(s)"

        step("GET /api/experiments", experiments)
        step("GET /api/models/mlp4/digits/best-config", best_config)
        step("GET /api/models/mlp4/digits/best-lambda", best_lambda)
        step("GET /api/models/mlp4/digits/compare", compare)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / ".check-python" / "smoke")
    print("smoke: all steps passed", flush=True)
