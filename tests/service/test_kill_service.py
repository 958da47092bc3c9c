"""Data safety: `kill -9` of the *service* process in the middle of its background sync leaves a
database with no half-written experiment or trial, and the next sync completes it, on SQLite and
PostgreSQL. (tests/storage/test_ingest.py kills a bare sync at a chosen statement; this kills the
real server at whatever point the sync has reached.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nni_runner import free_port
from sqlalchemy import func, select, text
from synthetic_nni import make_nni_dir

from storage.db import Database
from storage.models import Experiment, Trial, TrialLayer
from storage.sync import sync_all

ROOT = Path(__file__).resolve().parents[2]
N_EXP, N_TRIALS = 6, 2500  # each experiment's transaction takes ~1 s: a window to kill in


def stored(db: Database) -> dict[str, int]:
    with db.session_scope() as s:
        return dict(s.execute(
            select(Experiment.nni_id, func.count(Trial.id))
            .join(Trial, Trial.experiment_id == Experiment.id, isouter=True)
            .group_by(Experiment.nni_id)
        ).all())  # fmt: skip


def test_kill_9_of_the_service_mid_sync_then_next_sync_completes(db_url, tmp_path):
    nni_dir = make_nni_dir(tmp_path, {
        f"exp{i}": {"n_trials": N_TRIALS, "model": "mlp4", "dataset": "digits", "seed": i}
        for i in range(N_EXP)
    })  # fmt: skip
    db = Database(db_url)
    db.migrate()
    env = dict(os.environ, PYTHONPATH=str(ROOT), NSR_DATABASE_URL=db_url,
               NSR_NNI_DIR=str(nni_dir), NSR_SYNC_INTERVAL="1", NSR_PORT=str(free_port()))
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            seen = stored(db)
            if 1 <= len(seen) < N_EXP:  # some experiments committed, the sync still going
                break
            assert len(seen) < N_EXP, "the sync finished before it could be killed"
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the service never started syncing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # Every experiment in the database is whole: all its trials, and each finished trial with its
    # layer rows. Nothing of the experiment being written when the process died is there.
    after_kill = stored(db)
    assert 1 <= len(after_kill) < N_EXP
    assert set(after_kill.values()) == {N_TRIALS}, after_kill
    with db.session_scope() as s:
        without_layers = s.scalar(select(func.count()).select_from(Trial).where(
            Trial.val_error.is_not(None), ~Trial.layer_rows.any()))  # fmt: skip
        assert without_layers == 0
        assert s.scalar(select(func.count()).select_from(TrialLayer).where(
            ~TrialLayer.trial.has())) == 0  # fmt: skip
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
            assert conn.execute(text("PRAGMA foreign_key_check")).all() == []

    # The next sync completes the database, and it equals a clean ingest of the same sources.
    report = sync_all(db, nni_dir)
    assert report.errors == [] and report.inserted == N_TRIALS * (N_EXP - len(after_kill))
    assert stored(db) == {f"exp{i}": N_TRIALS for i in range(N_EXP)}
    assert sync_all(db, nni_dir).inserted == 0
    db.dispose()
