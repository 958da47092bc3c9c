"""Run a real NNI experiment from a test: ``nnictl create`` in a temporary HOME, wait, stop.

NNI keeps its registry (``~/nni-experiments/.experiment``) and every experiment's files under HOME,
so each test run gets a temporary HOME: nothing touches the developer's own experiments.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from service.app import create_app
from service.nni_launcher import create_experiment, nnictl
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
# NO_MORE_TRIAL means "all submitted", not "all finished": keep waiting through it.
FINISHED = {"DONE", "STOPPED", "ERROR"}


def decode(text: Any) -> Any:
    """A metric as NNI's REST API gives it (JSON text, usually of JSON text), decoded. The tests'
    own reading, kept apart from storage's parser so that it checks that parser."""
    value = text
    while isinstance(value, str):
        value = json.loads(value)
    return value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nni_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    # NNI keeps its experiments under HOME: a temporary one isolates them. Caches stay the real
    # ones, or every experiment would rebuild NSR's C++ kernel (~30 s) in its empty HOME.
    env.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    return env


@dataclass
class NNIExperiment:
    home: Path
    port: int
    id: str = ""
    status: str = ""
    trials: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    @property
    def nni_dir(self) -> Path:
        return self.home / "nni-experiments"

    @property
    def sqlite_path(self) -> Path:
        return self.nni_dir / self.id / "db" / "nni.sqlite"

    def rest(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/nni/{path}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def create(self, config: dict[str, Any]) -> None:
        config_path = self.home / "experiment.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.id = create_experiment(config_path, self.port, env=nni_env(self.home))

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.status = self.rest("check-status")["status"]
            if self.status in FINISHED:
                break
            time.sleep(1.0)
        else:
            raise TimeoutError(f"experiment {self.id} still {self.status} after {timeout:.0f} s")
        self.trials = self.rest("trial-jobs")
        self.metrics = self.rest("metric-data")

    def assert_done(self, n_trials: int) -> None:
        """It ran to its end (status DONE) with ``n_trials`` trials."""
        assert self.status == "DONE", self.status
        assert len(self.trials) == n_trials, (len(self.trials), n_trials)

    def ran_parameters(self) -> dict[str, dict[str, Any]]:
        """Trial job id -> the parameter set its own metrics name. NNI 3.0's trial record can
        name the set of a trial started beside it (trialConcurrency > 1); the metrics are the
        truth. Ids compare as text: Hyperband's are text ("0-3_0_5"), other tuners' ints."""
        sets = {}
        for t in self.trials:
            for h in t.get("hyperParameters") or []:
                hp = json.loads(h)
                sets[str(hp["parameter_id"])] = hp["parameters"]
        return {m["trialJobId"]: sets[str(m["parameterId"])] for m in self.metrics}

    def trial_log(self, trial_id: str) -> str:
        # NNI 3.0's local service keeps them in environments/<env>/trials/<trial id>/.
        exp_dir = self.nni_dir / self.id
        files = sorted(exp_dir.glob(f"**/trials/{trial_id}/trial.*"))
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')}" for p in files)

    def stop(self) -> None:
        if self.stopped or not self.id:
            return
        nnictl("stop", self.id, env=nni_env(self.home))
        self.stopped = True


@contextmanager
def finished_experiment(
    home: Path, config: dict[str, Any], timeout: float
) -> Iterator[NNIExperiment]:
    """``config`` run to its end under ``home``; its manager stays up while in use."""
    exp = NNIExperiment(home=home, port=free_port())
    exp.create(config)
    try:
        exp.wait(timeout=timeout)
        yield exp
    finally:
        exp.stop()


def module_experiment(name: str, config: Callable[[], dict[str, Any]], timeout: float) -> Any:
    """A module-scoped fixture: ``config()`` run to its end once for all the module's tests."""

    @pytest.fixture(scope="module")
    def experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NNIExperiment]:
        with finished_experiment(tmp_path_factory.mktemp(name), config(), timeout) as exp:
            yield exp

    return experiment


def final_reports(exp: NNIExperiment) -> dict[str, Any]:
    """Trial job id -> its decoded final report."""
    return {m["trialJobId"]: decode(m["data"]) for m in exp.metrics if m["type"] == "FINAL"}


@contextmanager
def synced_service(exp: NNIExperiment, db_dir: Path) -> Iterator[tuple[TestClient, Any]]:
    """The service on a fresh SQLite under ``db_dir``, after one sync of ``exp``'s NNI dir:
    (client, the sync's report)."""
    settings = Settings(database_url=f"sqlite:///{db_dir / 'nsr.sqlite'}",
                        nni_dir=exp.nni_dir, sync_interval=0)  # fmt: skip
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client, client.post("/api/sync").json()


def tiny_config(max_trials: int = 3, epochs: int = 2, concurrency: int = 2) -> dict[str, Any]:
    """MLP-4 on digits, a few trials of a couple of epochs: vanilla and NSR in one search."""
    return {
        "experimentName": "nsr-test-tiny",
        "searchSpace": {
            "layers": {"_type": "choice", "_value": ["none", "4", "3,4"]},
            "lambda_2": {"_type": "loguniform", "_value": [0.01, 100]},
            "lambda_3": {"_type": "loguniform", "_value": [0.01, 100]},
            "lambda_4": {"_type": "loguniform", "_value": [0.01, 100]},
            "seed": {"_type": "choice", "_value": [0, 1]},
        },
        "trialCommand": (
            f"python -m trials.mlp --model mlp4 --dataset digits --epochs {epochs} "
            "--lr 0.1 --batch-size 32 --threads 1 --probe-samples 500"
        ),
        "trialCodeDirectory": str(REPO),
        "trialConcurrency": concurrency,
        "maxTrialNumber": max_trials,
        "maxExperimentDuration": "10m",
        "tuner": {"name": "Random", "classArgs": {"seed": 3}},
        "trainingService": {"platform": "local"},
    }


SSHD = Path("/usr/sbin/sshd")


@dataclass
class SSHServer:
    """A throwaway ``sshd`` on 127.0.0.1: its own host key, one client key, the current user.

    The sessions it starts get ``HOME=home`` (sshd's ``SetEnv`` overrides the account's home), so
    NNI's remote training service keeps its files there and never in the real home directory;
    ``PIP_NO_INDEX`` keeps the worker set-up (NNI runs ``pip install nni --upgrade`` on every
    worker) from reaching for an index: the worker's NNI is the one installed here.
    """

    root: Path
    home: Path
    port: int = 0
    user: str = ""
    process: Any = None

    @property
    def key_file(self) -> Path:
        return self.root / "client_key"

    def start(self, timeout: float = 20.0) -> None:
        import getpass
        import subprocess

        self.root.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = free_port()
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nsr-test",
                            "-f", str(self.root / name)], check=True)  # fmt: skip
        (self.root / "authorized_keys").write_text((self.root / "client_key.pub").read_text())
        # sshd refuses to start as root without its privilege-separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True) if os.geteuid() == 0 else None
        cache = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
        config = f"""
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.root / 'host_key'}
PidFile {self.root / 'sshd.pid'}
AuthorizedKeysFile {self.root / 'authorized_keys'}
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers {self.user}
SetEnv HOME={self.home} XDG_CACHE_HOME={cache} PIP_NO_INDEX=1 PYTHONDONTWRITEBYTECODE=1
Subsystem sftp internal-sftp
"""
        (self.root / "sshd_config").write_text(config)
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.root / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=(self.root / "sshd.log").open("w"),
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"sshd did not listen on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def remote_config(ssh: SSHServer, python_bin: Path, **kw: Any) -> dict[str, Any]:
    """``tiny_config`` on NNI's remote training service: one machine, this test's sshd."""
    config = tiny_config(**kw)
    config["experimentName"] = "nsr-test-remote"
    config["nniManagerIp"] = "127.0.0.1"
    config["trainingService"] = {
        "platform": "remote",
        "machineList": [{"host": "127.0.0.1", "port": ssh.port, "user": ssh.user,
                         "sshKeyFile": str(ssh.key_file), "pythonPath": str(python_bin)}],
    }  # fmt: skip
    return config
