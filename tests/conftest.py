"""Shared fixtures: one real, tiny NNI experiment per test session (it takes ~40 s on 2 cores),
databases (empty or migrated, on SQLite and PostgreSQL) and a synthetic NNI directory."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nni_runner import NNIExperiment, finished_experiment, tiny_config  # noqa: E402
from synthetic_nni import make_nni_dir  # noqa: E402

from storage.db import Database  # noqa: E402


@pytest.fixture(scope="session")
def nni_experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NNIExperiment]:
    """A finished NNI experiment (manager still running): `.id`, `.port`, `.home`, `.trials`,
    `.metrics` (NNI's own REST view, fetched when it ended) and `.stop()` (idempotent)."""
    home = tmp_path_factory.mktemp("nni-home")
    with finished_experiment(home, tiny_config(), timeout=300) as exp:
        yield exp


# ------------------------------------------------------------ databases: SQLite and PostgreSQL
# The storage and service suites run on both back ends. PostgreSQL comes from
# NSR_TEST_POSTGRES_URL (`.ci/run` starts a throwaway cluster: `.ci/postgres-start`); each test gets
# a fresh database in it, created from template0 and dropped afterwards.
POSTGRES_URL_ENV = "NSR_TEST_POSTGRES_URL"


def _postgres_base_url() -> str | None:
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        return url
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        # In CI a missing server is a failure, never a quiet skip of half the suite.
        pytest.fail(f"CI is set but {POSTGRES_URL_ENV} is not: PostgreSQL must run in CI")
    return None


@contextmanager
def fresh_postgres_database(base_url: str, name: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_db_counter = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'nsr.sqlite'}"
        return
    base = _postgres_base_url()
    if base is None:
        pytest.skip(f"PostgreSQL: set {POSTGRES_URL_ENV} (e.g. $(.ci/postgres-start))")
    name = f"nsr_t{os.getpid()}_{next(_db_counter)}"
    with fresh_postgres_database(base, name) as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A migrated, empty database: SQLite and PostgreSQL (``db_url`` is parametrized)."""
    database = Database(db_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def three_searches(tmp_path: Path) -> Callable[[int, int, int], Path]:
    """``three_searches(a, b, c)``: tmp_path's synthetic NNI directory (``make_nni_dir``) of
    three stopped searches: expA and expB of mlp4/digits, expC of mlp6/mnist, with a, b and c
    trials."""

    def make(a: int, b: int, c: int) -> Path:
        return make_nni_dir(tmp_path, {
            "expA": {"n_trials": a, "model": "mlp4", "dataset": "digits", "seed": 1},
            "expB": {"n_trials": b, "model": "mlp4", "dataset": "digits", "seed": 2},
            "expC": {"n_trials": c, "model": "mlp6", "dataset": "mnist", "seed": 3},
        })  # fmt: skip

    return make
