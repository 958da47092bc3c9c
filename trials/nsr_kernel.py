"""NSR's compiled CPU step (``trials/csrc/nsr_cpu.cpp``): built once by torch's JIT extension
loader, cached per source, torch and Python version, and imported directly after that."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

from trials.params import cache_root

KERNEL_SOURCE = Path(__file__).with_name("csrc") / "nsr_cpu.cpp"


def kernel_build_dir() -> Path:
    """Where the compiled kernel is cached: one folder per source, torch and Python version."""
    root = cache_root()
    digest = hashlib.sha256(KERNEL_SOURCE.read_bytes()).hexdigest()[:12]
    tag = f"torch{torch.__version__.split('+')[0]}-py{sys.version_info[0]}{sys.version_info[1]}"
    return root / "kernels" / f"{tag}-{digest}"


def _import_built(path: Path) -> ModuleType:
    # A built kernel is imported directly: torch's loader would first import setuptools and run
    # ninja, about a second of every trial's start-up.
    spec = importlib.util.spec_from_file_location("nsr_cpu", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def cpu_kernel() -> ModuleType | None:
    """The compiled NSR step for CPU tensors, or None where it is off or cannot be built.

    Built by torch's JIT extension loader with the system C++ compiler the first time (~30 s on
    2 cores, under a file lock so concurrent trials build it once) and imported from the cache
    after that.
    """
    if os.environ.get("NSR_CPU_KERNEL", "1") == "0":
        return None
    build_dir = kernel_build_dir()
    built = build_dir / "nsr_cpu.so"
    if built.exists():
        try:
            return _import_built(built)
        except ImportError:
            pass  # half-written by a concurrent build, or stale: build under the lock below
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        print(f"nsr: building the C++ CPU kernel (once, ~30 s) in {build_dir}", file=sys.stderr,
              flush=True)
        # Its import warns that no CUDA runtime exists: true and irrelevant for a CPU kernel.
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        from torch.utils import cpp_extension

        venv_bin = str(Path(sys.executable).parent)
        if shutil.which("ninja") is None and shutil.which("ninja", path=venv_bin):
            # The pip-installed ninja lies beside this Python, which may not be on PATH.
            os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")
        return cpp_extension.load(
            name="nsr_cpu",
            sources=[str(KERNEL_SOURCE)],
            extra_cflags=["-O3"],
            build_directory=str(build_dir),
            verbose=False,
        )
    except Exception as exc:  # noqa: BLE001 - any build failure means "use the PyTorch ops"
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if len(first_line) > 160:  # a compiler command line: its head says enough
            first_line = first_line[:157] + "..."
        warnings.warn(
            f"NSR's C++ CPU kernel could not be built ({first_line}); using PyTorch ops, "
            "which make each training step slower (set NSR_CPU_KERNEL=0 to silence this)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
