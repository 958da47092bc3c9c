"""Shared fixtures: one real, tiny NNI experiment per test session (it takes ~40 s on 2 cores)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nni_runner import NNIExperiment, free_port, tiny_config  # noqa: E402


@pytest.fixture(scope="session")
def nni_experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NNIExperiment]:
    """A finished NNI experiment (manager still running): `.id`, `.port`, `.home`, `.trials`,
    `.metrics` (NNI's own REST view, fetched when it ended) and `.stop()` (idempotent)."""
    exp = NNIExperiment(home=tmp_path_factory.mktemp("nni-home"), port=free_port())
    exp.create(tiny_config())
    try:
        exp.wait(timeout=300)
        yield exp
    finally:
        exp.stop()
