"""The warm trial launcher: ``python -m trials.warm <entry> <flags>`` as NNI's ``trialCommand``.

It imports neither torch nor NNI. It connects to this experiment's warm server
(``trials/warm_server.py``: torch, the entry, NNI's trial client and the decoded data set already
loaded), starting it on first use, and hands it the trial: the entry, the flags, its environment
(NNI's ``NNI_*`` variables included), its working directory and its stdin/stdout/stderr (the file
descriptors themselves, over the Unix socket). The server forks a fresh child that runs the entry's
``cli`` as ``python -m trials.<entry> <flags>`` would; the launcher forwards the signals it gets to
that child, waits for its end and ends the same way (its exit code, or death by its signal), so NNI
sees the statuses, metrics and early stops of a cold trial. If the launcher is killed outright
(SIGKILL), its socket closes and the server kills the child.

``NSR_WARM=0`` runs the entry cold, in this process; so does any failure to reach a server (one
line on stderr says why). ``NSR_WARM_IDLE`` is the server's idle timeout in seconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from trials import contract
from trials.params import cache_root

MAX_MESSAGE = 1 << 20
#: Signals the launcher passes on to its trial (NNI stops a trial with SIGINT, then SIGKILL).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)  # fmt: skip
#: Variables a server is not started with: each trial brings its own.
TRIAL_ONLY_ENV = ("MULTI_PHASE", "REUSE_MODE", "SDK_PROCESS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DEFAULT_IDLE = 300.0
START_TIMEOUT = 180.0  # a first start imports torch and decodes the data set, on a busy machine
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes


class WarmUnavailable(Exception):
    """No warm server could take this trial; it runs cold."""


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    return env.get("NSR_WARM", "1") != "0"


def idle_seconds(env: Mapping[str, str] = os.environ) -> float:
    try:
        value = float(env.get("NSR_WARM_IDLE", DEFAULT_IDLE))
    except ValueError:
        return DEFAULT_IDLE
    return value if value > 0 else DEFAULT_IDLE


def experiment_dir(env: Mapping[str, str] = os.environ) -> Path | None:
    """``~/nni-experiments/<id>`` of the NNI trial this process is, from NNI's variables."""
    exp, out = env.get("NNI_EXP_ID"), env.get("NNI_OUTPUT_DIR")
    if not exp or not out:
        return None
    for parent in Path(out).parents:
        if parent.name == exp:
            return parent
    return None


def code_identity(env: Mapping[str, str] = os.environ) -> str:
    """What a server must share with a trial it runs: the interpreter, the import path and this
    package's source files (a code change starts a new server)."""
    package = Path(contract.__file__).resolve().parent
    parts = [sys.executable, str(package), env.get("PYTHONPATH", "")]
    for path in sorted([*package.glob("*.py"), *package.glob("csrc/*")]):
        with contextlib.suppress(OSError):
            stat = path.stat()
            parts.append(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def socket_path(env: Mapping[str, str] = os.environ) -> Path:
    """The server's socket: in the NNI experiment's folder (outside NNI, the cache folder), one
    per experiment and code identity."""
    key = env.get("NNI_EXP_ID") or "standalone"
    digest = hashlib.sha256(f"{key}\0{code_identity(env)}".encode()).hexdigest()[:16]
    path = (experiment_dir(env) or cache_root(env) / "warm") / f"nsr-warm-{digest}.sock"
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        short = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
        path = Path(f"/tmp/nsr-warm-{os.getuid()}") / f"{short}.sock"
    return path


def _own_dir(directory: Path) -> None:
    """``directory`` exists, is this user's and nobody else may write in it (so nobody can put
    another socket in the server's place)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stat = directory.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o022:
        raise WarmUnavailable(f"{directory} is not this user's own folder")


def connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        conn.connect(str(path))
    except (FileNotFoundError, ConnectionRefusedError):
        conn.close()
        return None
    except OSError as exc:
        conn.close()
        raise WarmUnavailable(f"cannot connect to {path}: {exc}") from None
    return conn


def server_env(env: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: the trial's without NNI's per-trial variables and the thread
    counts (each trial's own apply in its child)."""
    return {k: v for k, v in env.items() if not k.startswith("NNI_") and k not in TRIAL_ONLY_ENV}


def start_server(path: Path, entry: str, flags: Sequence[str]) -> subprocess.Popen[bytes]:
    """The server, in a session of its own (a kill of this trial's process group spares it),
    logging to ``<socket>.log``."""
    argv = [sys.executable, "-m", "trials.warm_server", "--socket", str(path), "--entry", entry,
            "--idle", str(idle_seconds())]  # fmt: skip
    exp_dir = experiment_dir()
    if exp_dir is not None:
        argv += ["--experiment", os.environ["NNI_EXP_ID"], "--registry",
                 str(exp_dir.parent / ".experiment")]  # fmt: skip
    with open(path.with_suffix(".log"), "ab") as log:
        return subprocess.Popen(
            [*argv, "--", *flags], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=server_env(os.environ), start_new_session=True,
        )  # fmt: skip


def connect_or_start(entry: str, flags: Sequence[str]) -> socket.socket:
    path = socket_path()
    _own_dir(path.parent)
    conn = connect(path)
    if conn is not None:
        return conn
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one launcher starts it; the others wait, then connect
        conn = connect(path)
        if conn is not None:
            return conn
        proc = start_server(path, entry, flags)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            conn = connect(path)
            if conn is not None:
                return conn
            if proc.poll() is not None:
                log = path.with_suffix(".log")
                raise WarmUnavailable(f"the warm server exited with {proc.returncode} (see {log})")
            time.sleep(0.02)
    raise WarmUnavailable(f"the warm server did not start in {START_TIMEOUT:.0f} s")


def die_by(signum: int) -> int:
    """End this process by ``signum`` (as its trial ended), else with the shell's 128 + n."""
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    return 128 + signum


def run_warm(conn: socket.socket, entry: str, flags: Sequence[str]) -> int:
    """Hand the trial to the server on ``conn``; its exit code (after a death by a signal, this
    process dies by the same signal). :class:`WarmUnavailable` when the server took no trial: the
    signal handlers are then this process's own again, and a signal that came meanwhile is
    delivered to it."""
    pending: list[int] = []
    sent = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        if not sent:
            pending.append(signum)
            return
        with contextlib.suppress(OSError):
            conn.send(json.dumps({"signal": signum}).encode())

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        request = {"entry": entry, "argv": list(flags), "env": dict(os.environ),
                   "cwd": os.getcwd()}  # fmt: skip
        try:
            socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        except OSError as exc:
            raise WarmUnavailable(f"the warm server took no trial: {exc}") from None
        sent = True
        for signum in pending:
            forward(signum, None)
        return _wait(conn)
    except WarmUnavailable:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in pending:
            os.kill(os.getpid(), signum)
        raise


def _wait(conn: socket.socket) -> int:
    """The server's messages until the trial's end: its exit code, or death by its signal."""
    started = False
    while True:
        try:
            data = conn.recv(MAX_MESSAGE)
        except OSError:
            data = b""
        if not data:
            if not started:
                raise WarmUnavailable("the warm server closed before starting the trial")
            print("nsr-warm: the warm server went away during the trial", file=sys.stderr,
                  flush=True)  # fmt: skip
            return 1
        message: dict[str, Any] = json.loads(data)
        if "refused" in message:
            raise WarmUnavailable(f"the warm server refused the trial: {message['refused']}")
        if "pid" in message:
            started = True
        elif "signal" in message:
            return die_by(int(message["signal"]))
        elif "exit" in message:
            return int(message["exit"])


def run_cold(entry: str, flags: Sequence[str]) -> int:
    """The entry in this process, as ``python -m trials.<entry> <flags>`` runs it."""
    module = importlib.import_module(f"trials.{entry}")
    sys.argv = [str(module.__file__), *flags]
    return int(module.cli(list(flags)))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in contract.ENTRIES:
        print(f"usage: python -m trials.warm {{{','.join(contract.ENTRIES)}}} [flags...]"
              " (NSR_WARM=0: cold)", file=sys.stderr)  # fmt: skip
        return 2
    entry, flags = args[0], args[1:]
    if not enabled():
        return run_cold(entry, flags)
    reason = ""
    for _attempt in range(2):  # a server that was just idling out: start a new one, once
        try:
            conn = connect_or_start(entry, flags)
            with conn:
                return run_warm(conn, entry, flags)
        except WarmUnavailable as exc:
            reason = str(exc)
    print(f"nsr-warm: {reason}; running this trial cold", file=sys.stderr, flush=True)
    return run_cold(entry, flags)


if __name__ == "__main__":
    sys.exit(main())
