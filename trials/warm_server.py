"""The warm trial server: one process per experiment that has the heavy state loaded (torch, the
trial entry, NNI's trial client, the decoded data set, NSR's compiled kernel) and forks a fresh
child for each trial that ``trials/warm.py`` hands it.

One thread, one ``selectors`` loop over the listening socket, each trial's connection and each
child's pidfd; the server itself never computes with torch (a fork after OpenMP or CUDA work is not
safe), so every child starts from the same untouched state. A child takes the launcher's file
descriptors as its stdin/stdout/stderr, its environment and working directory, resets what a new
process would have fresh (signal handlers, torch's generator, NNI's trial state and logging), and
runs the entry's ``cli``. Its end (exit code or signal) goes back to the launcher; a signal from the
launcher goes to the child; a launcher that vanishes takes its child's process group with it. The
server exits after ``--idle`` seconds without a trial, or when its NNI experiment has stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trials import contract
from trials.warm import FORWARDED, MAX_MESSAGE
from trials.warm_child import run_child

CHECK_EVERY = 2.0  # seconds between looks at the experiment's state


def log(message: str) -> None:
    print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] nsr-warm {os.getpid()}: {message}", flush=True)


@dataclass
class Trial:
    pid: int
    conn: socket.socket | None
    pidfd: int | None


class Preloaded:
    """What every child inherits: torch's generator state as a new process has it."""

    def __init__(self, entry: str, flags: Sequence[str]) -> None:
        import torch

        self.rng_state = torch.random.get_rng_state()
        import nni  # noqa: F401 - imported for the children, with no trial's variables set
        import nni.runtime.trial_command_channel.local_legacy  # noqa: F401
        import nni.runtime.trial_command_channel.v3  # noqa: F401

        from trials import data

        data.keep_decoded()
        self.entry(entry)
        self.data(entry, flags)
        self.kernel()

    @staticmethod
    def entry(entry: str) -> Any:
        return importlib.import_module(f"trials.{entry}")

    @staticmethod
    def data(entry: str, flags: Sequence[str]) -> None:
        """Decode the image data set the command's flags name (NNI's parameters come later)."""
        from trials import data
        from trials.params import TrialError, from_cli

        module = importlib.import_module(f"trials.{entry}")
        cls = getattr(module, f"{entry.upper()}Params", None)
        if cls is None:
            return
        try:
            p = from_cli(cls, list(flags), "warm", "")
        except (TrialError, SystemExit):
            return
        if p.dataset in data.IMAGE_DATASETS:
            data.decode_image_dataset(p.dataset, p.data_root)

    @staticmethod
    def kernel() -> None:
        from trials import nsr_kernel

        if (nsr_kernel.kernel_build_dir() / "nsr_cpu.so").exists():
            nsr_kernel.cpu_kernel()  # only imports it; a missing one is built by its first trial


class Server:
    def __init__(self, path: Path, idle: float, registry: Path | None, experiment: str | None):
        self.path, self.idle = path, idle
        self.registry, self.experiment = registry, experiment
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a dead server's; the launcher's lock keeps live ones from racing here
        self.listener.bind(str(path))
        os.chmod(path, 0o600)
        self.inode = path.stat().st_ino
        self.selector = selectors.DefaultSelector()
        self.trials: dict[int, Trial] = {}
        self.last_active = time.monotonic()
        self.next_check = 0.0
        self.has_pidfd = _pidfd_works()

    def serve(self, preloaded: Preloaded) -> None:
        self.preloaded = preloaded
        self.listener.listen(64)
        self.selector.register(self.listener, selectors.EVENT_READ, ("accept", None))
        log(f"serving on {self.path}")
        while True:
            timeout = 1.0 if self.has_pidfd else 0.05
            for key, _ in self.selector.select(timeout):
                kind, trial = key.data
                try:
                    if kind == "accept":
                        self.accept()
                    elif kind == "conn":
                        self.from_launcher(trial)
                    else:
                        self.reap(trial)
                except Exception:  # noqa: BLE001 - one trial's trouble never ends the server
                    log(f"error handling {kind}:\n{traceback.format_exc()}")
            if not self.has_pidfd:
                for trial in list(self.trials.values()):
                    self.reap(trial, block=False)
            if not self.trials and self.should_exit():
                break
        self.close()

    def should_exit(self) -> bool:
        now = time.monotonic()
        if now - self.last_active > self.idle:
            log(f"idle for {self.idle:.0f} s: exiting")
            return True
        if now >= self.next_check:
            self.next_check = now + CHECK_EVERY
            if self.experiment_over():
                log(f"experiment {self.experiment} has ended: exiting")
                return True
            if not self.still_ours():
                log("the socket was replaced: exiting")
                return True
        return False

    def experiment_over(self) -> bool:
        """NNI's registry says the experiment stopped, or its manager process is gone."""
        if self.registry is None or self.experiment is None:
            return False
        try:
            record = json.loads(self.registry.read_text()).get(self.experiment)
        except (OSError, ValueError, AttributeError):
            return False
        if not isinstance(record, dict):
            return False
        if record.get("status") == "STOPPED":
            return True
        pid = record.get("pid")
        if isinstance(pid, int) and pid > 0:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def still_ours(self) -> bool:
        try:
            return self.path.stat().st_ino == self.inode
        except OSError:
            return False

    def close(self) -> None:
        if self.still_ours():
            self.path.unlink(missing_ok=True)
        self.selector.close()
        self.listener.close()

    def accept(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(5)  # a launcher sends its request as soon as it connects
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            conn.close()  # only this user's trials
            return
        try:
            data, fds, _, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
        except OSError:
            conn.close()
            return
        try:
            self.start(conn, data, fds)
        except Exception:
            conn.close()  # the launcher sees the server close before a start: it runs cold
            raise
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def start(self, conn: socket.socket, data: bytes, fds: Sequence[int]) -> None:
        """Fork the child for one launcher's request, or refuse the request."""
        try:
            request = parse_request(data, fds)
        except ValueError as exc:
            with contextlib.suppress(OSError):
                conn.send(json.dumps({"refused": str(exc)}).encode())
            conn.close()
            return
        with contextlib.suppress(Exception):  # a broken entry fails in its child, as cold
            self.preloaded.entry(request["entry"])  # imported once here, not in every child
        pid = os.fork()
        if pid == 0:
            run_child(self.close_in_child, self.preloaded.rng_state, request, fds, conn)
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)  # as the child does: no race with a signal to its group
        trial = Trial(pid, conn, None)
        self.trials[pid] = trial
        if self.has_pidfd:
            trial.pidfd = os.pidfd_open(pid)
            self.selector.register(trial.pidfd, selectors.EVENT_READ, ("exit", trial))
        self.selector.register(conn, selectors.EVENT_READ, ("conn", trial))
        self.last_active = time.monotonic()
        self.send(trial, {"pid": pid})

    def send(self, trial: Trial, message: Mapping[str, Any]) -> None:
        if trial.conn is not None:
            with contextlib.suppress(OSError):
                trial.conn.send(json.dumps(message).encode())

    def from_launcher(self, trial: Trial) -> None:
        assert trial.conn is not None
        try:
            data = trial.conn.recv(4096)
        except OSError:
            data = b""
        if not data:  # the launcher is gone (killed): so is its trial
            self.drop_conn(trial)
            kill_group(trial.pid, signal.SIGKILL)
            return
        try:
            signum = int(json.loads(data)["signal"])
        except (ValueError, KeyError, TypeError):
            return
        if signum in FORWARDED:
            with contextlib.suppress(ProcessLookupError):
                os.kill(trial.pid, signum)

    def drop_conn(self, trial: Trial) -> None:
        if trial.conn is not None:
            self.selector.unregister(trial.conn)
            trial.conn.close()
            trial.conn = None

    def reap(self, trial: Trial, block: bool = True) -> None:
        pid, status = os.waitpid(trial.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return
        kill_group(trial.pid, signal.SIGKILL)  # anything the trial left behind in its group
        code = os.waitstatus_to_exitcode(status)
        self.send(trial, {"signal": -code} if code < 0 else {"exit": code})
        self.drop_conn(trial)
        if trial.pidfd is not None:
            self.selector.unregister(trial.pidfd)
            os.close(trial.pidfd)
        del self.trials[trial.pid]
        self.last_active = time.monotonic()

    def close_in_child(self) -> None:
        """A child keeps none of the server's sockets."""
        for trial in self.trials.values():
            if trial.conn is not None:
                trial.conn.close()
            if trial.pidfd is not None:
                os.close(trial.pidfd)
        self.selector.close()
        self.listener.close()


def _pidfd_works() -> bool:
    """Linux 5.3 and later: a child's end is an event; before, the loop polls ``waitpid``."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def parse_request(data: bytes, fds: Sequence[int]) -> dict[str, Any]:
    """A launcher's request, checked: an entry of ours, text flags, environment and folder."""
    if len(fds) != 3:
        raise ValueError("a request brings stdin, stdout and stderr")
    try:
        request = json.loads(data)
    except ValueError:
        raise ValueError("a request is JSON") from None
    if not isinstance(request, dict) or request.get("entry") not in contract.ENTRIES:
        raise ValueError(f"the entry must be one of {', '.join(contract.ENTRIES)}")
    argv, env, cwd = request.get("argv"), request.get("env"), request.get("cwd")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a list of text")
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise ValueError("env must map text to text")
    if not isinstance(cwd, str):
        raise ValueError("cwd must be text")
    return request


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trials.warm_server", description=__doc__)
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--entry", required=True, choices=contract.ENTRIES)
    parser.add_argument("--idle", type=float, default=300.0)
    parser.add_argument("--experiment")
    parser.add_argument("--registry", type=Path)
    parser.add_argument("flags", nargs="*")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher's terminal is not ours
    started = time.monotonic()
    preloaded = Preloaded(args.entry, args.flags)
    gc.freeze()  # what is loaded now is never collected: children keep sharing its pages
    server = Server(args.socket, args.idle, args.registry, args.experiment)
    log(f"preloaded {args.entry} in {time.monotonic() - started:.2f} s")
    server.serve(preloaded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
