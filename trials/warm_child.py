"""A warm trial's child, forked by ``trials/warm_server.py``: it becomes the launcher's process
(its stdin/stdout/stderr, environment, working directory and argv), resets what a new process
would have fresh (signal handlers, generators, thread count, NNI's trial state and logging), runs
the entry's ``cli`` and exits with its status, or dies by SIGINT as a cold trial does."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import os
import random
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from trials.warm import FORWARDED

PR_SET_PDEATHSIG = 1


def _std_streams() -> None:
    """New sys.stdin/stdout/stderr on fds 0-2, as a new interpreter would make them."""
    def stream(fd: int, mode: str, errors: str) -> io.TextIOWrapper:
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedWriter(raw) if mode == "w" else io.BufferedReader(raw)
        return io.TextIOWrapper(buffered, encoding=sys.getfilesystemencoding(), errors=errors,
                                line_buffering=mode == "w" and os.isatty(fd))  # fmt: skip

    sys.stdin = sys.__stdin__ = stream(0, "r", "strict")
    sys.stdout = sys.__stdout__ = stream(1, "w", "strict")
    sys.stderr = sys.__stderr__ = stream(2, "w", "backslashreplace")


def reset_nni() -> None:
    """NNI's trial state as importing it in this trial's environment makes it: its variables, the
    parameter record, the command channel and the trial log (``trial.log``, stdout under
    ``local``)."""
    import nni
    import nni.runtime.trial_command_channel as channels
    import nni.trial
    from nni.runtime import env_vars
    from nni.runtime import log as nni_log

    trial_vars = env_vars._load_env_vars(env_vars._trial_env_var_names)
    dispatcher_vars = env_vars._load_env_vars(env_vars._dispatcher_env_var_names)
    legacy = sys.modules.get(channels.__name__ + ".local_legacy")
    for module in (env_vars, nni_log, nni.trial, nni, legacy):
        if module is not None and hasattr(module, "trial_env_vars"):
            module.trial_env_vars = trial_vars  # type: ignore[attr-defined]
        if module is not None and hasattr(module, "dispatcher_env_vars"):
            module.dispatcher_env_vars = dispatcher_vars  # type: ignore[attr-defined]
    nni.trial._params = None
    nni.trial._experiment_id = trial_vars.NNI_EXP_ID or "STANDALONE"
    nni.trial._trial_id = trial_vars.NNI_TRIAL_JOB_ID or "STANDALONE"
    seq = trial_vars.NNI_TRIAL_SEQ_ID
    nni.trial._sequence_id = int(seq) if seq is not None else 0
    nni.trial._intermediate_seq = 0
    channels._channel = None
    nni_log.silence_stdout()
    nni_log._init_logger()


def _die_with_server() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run_child(
    close_server: Callable[[], None],
    rng_state: Any,
    request: Mapping[str, Any],
    fds: Sequence[int],
    conn: socket.socket,
) -> NoReturn:
    """The forked child: become the launcher's process, run its trial, exit with its status."""
    code = 1
    try:
        # First, the signals: a SIGINT from NNI from now on interrupts the trial as it would a
        # cold one (the server ignores it).
        for signum in (*FORWARDED, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        parent = os.getppid()
        _die_with_server()
        if os.getppid() != parent:
            os._exit(1)
        conn.close()
        close_server()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _std_streams()
        entry, argv = request["entry"], list(request["argv"])
        module = importlib.import_module(f"trials.{entry}")
        sys.argv = [str(module.__file__), *argv]
        fresh_process_state(rng_state, request["env"])
        reset_nni()
        code = int(module.cli(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except KeyboardInterrupt:  # outside run_main's catch (while starting): as Python ends
        traceback.print_exc()
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:  # noqa: BLE001 - as an uncaught exception ends a cold trial
        traceback.print_exc()
        code = 1
    _flush()
    os._exit(code)


def fresh_process_state(rng_state: Any, env: Mapping[str, str]) -> None:
    """What a new process starts with: unseeded Python and NumPy generators (from the OS),
    torch's default generator at its start state, the trial's thread count from its variables."""
    import numpy as np
    import torch

    random.seed()
    np.random.seed()
    torch.random.set_rng_state(rng_state)
    threads = env.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))


def _flush() -> None:
    import logging

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):
        logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
