"""Starting NNI from this installation: ``nnictl create`` on a free port, and the confirmation
plans the service writes as NNI experiment files.

Everything that runs ``nnictl`` lives here, with its own error type (:class:`LaunchError`), so the
API routes, the CLI and the quickstart start experiments the same way.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import yaml

from service.settings import Settings, data_dir
from storage.schemas import ConfirmationPlan, ConfirmationStarted

REPO = Path(__file__).resolve().parents[1]
#: The first port tried for a confirmation's NNI manager (8080 is the quickstart search's).
FIRST_CONFIRMATION_PORT = 8081
PORTS_TRIED = 50


class LaunchError(Exception):
    """NNI could not be started: no free port, or ``nnictl`` failed (its last lines say why)."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port_from(host: str, start: int) -> int:
    for port in range(start, start + PORTS_TRIED):
        if port_is_free(host, port):
            return port
    raise LaunchError(f"no free port in {start}..{start + PORTS_TRIED - 1} on {host}")


BIND_HOST_JS = Path(__file__).resolve().parent / "node" / "bind_host.js"
LOOPBACK = "127.0.0.1"


def nnictl(
    *args: str, env: Mapping[str, str] | None = None, bind: str = LOOPBACK
) -> subprocess.CompletedProcess[str]:
    """Run nnictl with this interpreter; ``env`` defaults to ours (tests pass a temporary HOME).

    A manager it starts listens on ``bind`` only (``node/bind_host.js``, preloaded into NNI's
    node process): NNI 3.0 itself listens on every interface."""
    env = dict(os.environ if env is None else env)
    # Trials run `python -m trials.mlp`: this interpreter (the venv's) must be their `python`.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NSR_NNI_BIND"] = bind
    preload = f'--require "{BIND_HOST_JS}"'
    env["NODE_OPTIONS"] = f"{env['NODE_OPTIONS']} {preload}" if env.get("NODE_OPTIONS") else preload
    return subprocess.run(
        [sys.executable, "-m", "nni.tools.nnictl.nnictl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )


def create_experiment(
    config: Path, port: int, env: Mapping[str, str] | None = None, bind: str = LOOPBACK
) -> str:
    """``nnictl create`` with its manager on ``bind``; the new experiment's id, or a LaunchError
    with nnictl's last lines."""
    out = nnictl("create", "--config", str(config), "--port", str(port), env=env, bind=bind)
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)  # nnictl colours its output
    match = re.search(r"Experiment ID: (\w+)", text)
    if out.returncode != 0 or not match:
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        raise LaunchError(f"nnictl create --config {config} failed: {tail}")
    return match.group(1)


def write_plan(plan: ConfirmationPlan, directory: Path | None = None) -> Path:
    """The plan's NNI experiment as a YAML file under the data directory's ``confirmations/``."""
    directory = directory or data_dir() / "confirmations"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"confirm-{plan.model}-{plan.dataset}-{stamp}.yml"
    path.write_text(yaml.safe_dump(plan.experiment, sort_keys=False, allow_unicode=True))
    return path


def start_confirmation(plan: ConfirmationPlan, settings: Settings) -> ConfirmationStarted:
    """Start the plan under NNI. It runs like any search (its own UI; the service's background
    sync picks its trials up); its name marks it as a confirmation."""
    path = write_plan(plan)
    port = free_port_from(LOOPBACK, FIRST_CONFIRMATION_PORT)
    nni_id = create_experiment(path, port, bind=settings.nni_bind)
    return ConfirmationStarted(
        plan=plan, started=True, nni_id=nni_id, nni_url=f"http://127.0.0.1:{port}/",
        config_path=str(path),
    )  # fmt: skip
