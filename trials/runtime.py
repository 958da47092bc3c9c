"""Process-level plumbing shared by every trial entry: device, seeding, exit codes."""

from __future__ import annotations

import os
import random
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from trials.params import RegularizedParams, TrialError, from_cli, regularized_layers
from trials.report import Reporter

DEVICES = ("cpu", "cuda", "auto")
P = TypeVar("P", bound=RegularizedParams)


def pick_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise TrialError(f"device={name!r} is not allowed; allowed: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrialError("device='cuda' but no CUDA device is available; use cpu or auto")
    return torch.device(name)


def seed_everything(seed: int, threads: int = 0) -> None:
    if threads < 0:
        raise TrialError(f"threads={threads} must be >= 0 (0 = torch's default)")
    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def start_trial(
    p: P, validate: Callable[[P], None], layer_indices: Callable[[P], list[int]]
) -> tuple[list[int], torch.device]:
    """Every trial's first steps: check ``p`` (before ``layer_indices``, which trusts its model),
    resolve the layers the regularizer acts on, pick the device and seed every generator. Returns
    the regularized layers and the device."""
    validate(p)
    regularized = regularized_layers(p, layer_indices(p))
    device = pick_device(p.device)
    seed_everything(p.seed, p.threads)
    return regularized, device


def run_main(body: Callable[[], Mapping[str, Any]]) -> int:
    """Run a trial; report its final metrics; bad input is one line on stderr and exit code 2."""
    try:
        metrics = body()
    except TrialError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        die_by_sigint()
        return 130  # not reached where SIGINT can be re-raised
    Reporter().final(metrics)
    return 0


def run_entry(
    main: Callable[[Any], Mapping[str, Any]],
    params_class: type,
    module: str,
    doc: str | None,
    argv: Sequence[str] | None = None,
) -> int:
    """``python -m <module>``: parameters from defaults, flags and NNI, then ``main``, then the
    final report (``run_main``)."""
    return run_main(lambda: main(from_cli(params_class, argv, f"python -m {module}", doc or "")))


def die_by_sigint() -> None:
    """End the process by SIGINT itself, not by a plain exit status.

    NNI stops a trial (its assessor's early stop, or a user's cancel) with SIGINT. A trial that
    caught it and exited 130 reads to NNI 3.0 as a trial that FAILED; one that dies by the signal
    reads as stopped. The shell sees 130 either way.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
