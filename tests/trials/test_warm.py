"""Warm trials outside NNI: ``python -m trials.warm mlp ...`` against ``python -m trials.mlp ...``.

Each test gets its own server (its own ``NNI_EXP_ID`` key, without the rest of NNI's variables
the trial runs standalone) under a temporary cache folder, and kills it at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from trials import warm

REPO = Path(__file__).resolve().parents[2]
FLAGS = ["--model", "mlp4", "--dataset", "digits", "--epochs", "2", "--lr", "0.1", "--batch-size",
         "32", "--threads", "1", "--probe-samples", "300", "--seed", "4"]  # fmt: skip
#: A trial that runs until it is stopped (100,000 epochs of batches of 2: hours).
LONG = ["--model", "mlp4", "--dataset", "digits", "--epochs", "100000", "--batch-size", "2",
        "--threads", "1", "--probe-samples", "300"]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short cache folder (socket paths are short), sharing the real compiled kernel."""
    root = tmp_path_factory.mktemp("wc")
    real = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nsr-search"
    (root / "nsr-search").mkdir()
    if (real / "kernels").is_dir():
        (root / "nsr-search" / "kernels").symlink_to(real / "kernels")
    return root


@pytest.fixture
def env(cache: Path) -> Iterator[dict[str, str]]:
    """A trial environment with its own warm server, which is killed afterwards."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("NNI_")}
    out.update(PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(cache), NSR_WARM_IDLE="120",
               NNI_EXP_ID=f"test-{uuid.uuid4().hex[:8]}")  # fmt: skip
    yield out
    pid = server_pid(out)
    if pid is not None:
        for p in [*children(pid), pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


def launcher(env: dict[str, str], flags: list[str], **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "trials.warm", "mlp", *flags], cwd=REPO,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            **kw)  # type: ignore[call-overload]  # fmt: skip


def run(env: dict[str, str], flags: list[str], cold: bool = False) -> subprocess.CompletedProcess:
    argv = ["-m", "trials.mlp"] if cold else ["-m", "trials.warm", "mlp"]
    return subprocess.run([sys.executable, *argv, *flags], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=600)  # fmt: skip


def final(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    report.pop("epoch_seconds")  # the one timing in the report
    return report


def server_pid(env: dict[str, str]) -> int | None:
    log = warm.socket_path(env).with_suffix(".log")
    if not log.exists():
        return None
    found = re.findall(r"nsr-warm (\d+): serving", log.read_text())
    return int(found[-1]) if found else None


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1))  # type: ignore[union-attr]


def wait_for(predicate, timeout: float = 60.0) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def first_epoch(proc: subprocess.Popen[str], timeout: float = 300.0) -> None:
    """Wait for the trial's first epoch line on its stderr (through the launcher's pipe)."""
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(1.0):
            line = proc.stderr.readline()
            if line.startswith("epoch"):
                return
            assert line, f"the trial ended before its first epoch ({proc.poll()})"
    raise TimeoutError("no epoch within the timeout")


def the_trial_child(env: dict[str, str]) -> int:
    pid = server_pid(env)
    assert pid is not None
    kids = children(pid)
    assert len(kids) == 1, kids
    return kids[0]


def test_warm_and_cold_give_identical_final_metrics_for_one_seed(env: dict[str, str]) -> None:
    cold = final(run(env, FLAGS, cold=True))
    first = run(env, FLAGS)  # starts the server
    second = run(env, FLAGS)  # forked from it
    assert "cold" not in first.stderr + second.stderr, first.stderr + second.stderr
    assert server_pid(env) is not None and alive(server_pid(env))  # type: ignore[arg-type]
    assert final(first) == cold == final(second)
    assert cold["config"]["seed"] == 4
    other = final(run(env, [*FLAGS[:-1], "5"]))
    assert other["default"] != cold["default"] or other["var_4"] != cold["var_4"]


def test_nsr_warm_0_runs_the_trial_cold_in_the_launcher(env: dict[str, str]) -> None:
    out = run({**env, "NSR_WARM": "0"}, FLAGS)
    assert final(out) == final(run(env, FLAGS, cold=True))
    assert server_pid(env) is None and not warm.socket_path(env).exists()


def test_a_crashing_trial_does_not_take_the_server_down(env: dict[str, str]) -> None:
    assert final(run(env, FLAGS))
    pid = server_pid(env)
    bad = run(env, ["--epochs", "0"])
    assert bad.returncode == 2 and "epochs=0 must be >= 1" in bad.stderr
    crashing = launcher(env, LONG)
    first_epoch(crashing)
    os.kill(the_trial_child(env), signal.SIGSEGV)  # the trial's process crashes
    assert crashing.wait(timeout=60) == -signal.SIGSEGV
    assert final(run(env, FLAGS))
    assert server_pid(env) == pid and alive(pid)  # type: ignore[arg-type]
    assert children(pid) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killing_the_launcher_leaves_no_stray_process(env: dict[str, str], sig: int) -> None:
    """SIGINT is how NNI stops a trial (Medianstop, a cancel, ``nnictl stop``), SIGKILL what it
    sends one that does not end within 5 s: either way the trial's process ends too."""
    proc = launcher(env, LONG)
    first_epoch(proc)
    child = the_trial_child(env)
    proc.send_signal(sig)
    # It dies by the signal, as a cold trial does (NNI reads SIGINT as stopped, not failed).
    assert proc.wait(timeout=60) == -sig
    assert wait_for(lambda: not alive(child)), f"trial process {child} outlived its launcher"
    pid = server_pid(env)
    assert pid is not None and alive(pid) and children(pid) == []


def test_the_servers_memory_stays_bounded_over_many_trials(env: dict[str, str]) -> None:
    one = [*FLAGS[:5], "1", *FLAGS[6:]]
    assert final(run(env, one))
    pid = server_pid(env)
    assert pid is not None
    before = rss_kib(pid)
    for seed in range(30):
        out = run(env, [*one[:-1], str(seed)])
        assert out.returncode == 0, out.stderr
    after = rss_kib(pid)
    # The server itself runs no trial: its memory is what it preloaded (~0.7 GB with torch).
    assert after - before < 64 * 1024, (before, after)
    assert children(pid) == []


def test_a_server_it_cannot_trust_or_reach_means_a_cold_start(env: dict[str, str]) -> None:
    folder = warm.socket_path(env).parent
    folder.mkdir(parents=True, exist_ok=True)
    mode = folder.stat().st_mode
    folder.chmod(0o777)  # anyone could put a socket of theirs in the server's place
    try:
        out = run(env, FLAGS)
    finally:
        folder.chmod(mode)
    assert "is not this user's own folder; running this trial cold" in out.stderr
    assert final(out) == final(run(env, FLAGS, cold=True))
    assert server_pid(env) is None
