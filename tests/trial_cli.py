"""Running a trial entry the two ways its tests do: as ``python -m trials.<entry>`` in a child
process (the exit code and stderr NNI would see), and in-process through its ``cli`` function."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence

import pytest
from nni_runner import REPO


def run_module(
    module: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` with this interpreter, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else dict(env),
    )


def run_cli(
    cli: Callable[[Sequence[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    """The entry's exit code and the lines it wrote to stderr."""
    code = cli(argv)
    return code, capsys.readouterr().err.strip().splitlines()
