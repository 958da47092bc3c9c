"""Ingest from NNI's sqlite format: idempotence, off-contract trials, consistency after failures."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import event, exc, func, select, text
from synthetic_nni import dump_tables, make_nni_dir, write_nni_sqlite, write_registry

from storage.db import Database
from storage.models import Experiment, Trial, TrialLayer
from storage.nni.registry import read_registry
from storage.nni.sqlite import read_sqlite
from storage.sync import ingest_sqlite_file, sync_all

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def nni_dir(three_searches):
    return three_searches(60, 40, 30)


def semantic_rows(database):
    """Rows without surrogate ids: equal for two databases holding the same data."""
    with database.engine.connect() as conn:
        trials = sorted(
            conn.execute(
                text(
                    "SELECT e.nni_id, t.trial_job_id, t.fingerprint FROM trials t "
                    "JOIN experiments e ON e.id = t.experiment_id"
                )
            ).all()
        )
        layers = sorted(
            conn.execute(
                text(
                    "SELECT e.nni_id, t.trial_job_id, l.layer, l.lam, l.var_init, l.var_end "
                    "FROM trial_layers l JOIN trials t ON t.id = l.trial_id "
                    "JOIN experiments e ON e.id = t.experiment_id"
                )
            ).all()
        )
    return trials, layers  # fmt: skip


def test_sync_ingests_every_trial_and_keeps_off_contract_ones(db, nni_dir):
    report = sync_all(db, nni_dir)
    assert report.errors == [] and report.experiments == 3 and report.inserted == 130
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Trial)) == 130
        statuses = dict(s.execute(select(Trial.status, func.count()).group_by(Trial.status)).all())
        bare = s.scalars(select(Trial).where(Trial.final_raw.is_not(None))).all()
        failed = s.scalars(select(Trial).where(Trial.status == "FAILED")).all()
        exp = s.scalar(select(Experiment).where(Experiment.nni_id == "expC"))
        assert (exp.model, exp.dataset, exp.status, exp.source) == ("mlp6", "mnist", "STOPPED",
                                                                    "sqlite")  # fmt: skip
    # The synthetic generator makes ~4% FAILED (no final) and ~2% bare-float finals.
    assert statuses.get("FAILED", 0) == len(failed) > 0
    assert all(t.val_error is None and t.final_metrics is None for t in failed)
    assert bare and all(json.loads(json.loads(t.final_raw)) == t.val_error for t in bare)


def test_second_sync_changes_no_row(db, nni_dir):
    sync_all(db, nni_dir)
    before = dump_tables(db.engine)
    again = sync_all(db, nni_dir)
    assert again.skipped == 3 and again.inserted == again.updated == 0
    assert dump_tables(db.engine) == before
    # Even when the files are re-read (stamp forgotten), no row changes.
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE experiments SET source_stamp = NULL"))
    forced = sync_all(db, nni_dir)
    assert (
        forced.skipped == 0 and forced.unchanged == 130 and forced.inserted == forced.updated == 0
    )
    after = dump_tables(db.engine)
    assert after["trials"] == before["trials"] and after["trial_layers"] == before["trial_layers"]


def test_growing_experiment_adds_only_new_trials(db, tmp_path):
    nni_dir = tmp_path / "nni-experiments"
    path = nni_dir / "grow" / "db" / "nni.sqlite"
    write_nni_sqlite(path, "grow", n_trials=10, seed=5)
    write_registry(nni_dir, {"grow": {}})
    sync_all(db, nni_dir)
    first = dump_tables(db.engine)["trials"]
    path.unlink()
    write_nni_sqlite(path, "grow", n_trials=15, seed=5)  # same first 10 trials, 5 more
    report = sync_all(db, nni_dir)
    assert (report.inserted, report.updated, report.unchanged) == (5, 0, 10)
    assert dump_tables(db.engine)["trials"][:10] == first


def test_trial_status_change_updates_the_row_and_its_layers(db, tmp_path):
    nni_dir = make_nni_dir(tmp_path, {"e": {"n_trials": 5, "seed": 9}})
    path = nni_dir / "e" / "db" / "nni.sqlite"
    sync_all(db, nni_dir)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE MetricData SET data = ? WHERE trialJobId = 'T00000' AND type = 'FINAL'",
                 (json.dumps(json.dumps({"default": 1.0, "var_9": 5.0})),))  # fmt: skip
    conn.commit()
    conn.close()
    report = sync_all(db, nni_dir)
    assert (report.updated, report.unchanged) == (1, 4)
    with db.session_scope() as s:
        t = s.scalar(select(Trial).where(Trial.trial_job_id == "T00000"))
        layers = {r.layer: r.var_end for r in t.layer_rows}
    assert t.val_error == 1.0 and layers[9] == 5.0


def test_missing_experiment_dir_is_an_error_not_a_crash(db, nni_dir):
    write_registry(nni_dir, {"expA": {}, "gone": {}, "expB": {}})
    report = sync_all(db, nni_dir)
    assert report.experiments == 2 and len(report.errors) == 1 and "gone" in report.errors[0]


def test_fresh_database_from_nni_sqlite_alone(db, nni_dir, tmp_path):
    sync_all(db, nni_dir)
    other = Database(f"sqlite:///{tmp_path / 'other.sqlite'}")
    other.migrate()
    for exp in ("expA", "expB", "expC"):
        ingest_sqlite_file(other, nni_dir / exp / "db" / "nni.sqlite")
    assert semantic_rows(other) == semantic_rows(db)
    other.dispose()


def test_injected_db_error_mid_sync_leaves_database_consistent(db, nni_dir, tmp_path):
    """The per-layer insert of the second experiment fails: that experiment is rolled back
    whole, the others are ingested, and the next sync completes the database."""
    state = {"armed": True, "layer_inserts": 0}

    @event.listens_for(db.engine, "before_cursor_execute")
    def fail(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO trial_layers"):
            state["layer_inserts"] += 1
            if state["armed"] and state["layer_inserts"] == 2:
                raise exc.OperationalError(statement, {}, Exception("injected: disk I/O error"))

    report = sync_all(db, nni_dir)
    assert len(report.errors) == 1 and "injected" in report.errors[0]
    failed_id = report.errors[0].split(":")[0]
    with db.session_scope() as s:
        ids = set(s.scalars(select(Experiment.nni_id)))
        assert ids == {"expA", "expB", "expC"} - {failed_id}
        # Every stored trial has all its layer rows: nothing half-written.
        orphans = s.scalar(select(func.count()).select_from(Trial).where(
            Trial.final_metrics.is_not(None), Trial.val_error.is_not(None),
            ~Trial.layer_rows.any()))  # fmt: skip
        assert orphans == 0
        assert s.scalar(select(func.count()).select_from(TrialLayer)) > 0
    state["armed"] = False
    assert sync_all(db, nni_dir).errors == []
    clean = Database(f"sqlite:///{tmp_path / 'clean.sqlite'}")
    clean.migrate()
    sync_all(clean, nni_dir)
    assert semantic_rows(db) == semantic_rows(clean)
    clean.dispose()


KILL_SCRIPT = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from sqlalchemy import event
    from storage.db import Database
    from storage.sync import sync_all
    db = Database(sys.argv[1]); db.migrate()
    seen = {"experiments": 0}
    @event.listens_for(db.engine, "after_cursor_execute")
    def die(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO experiments"):
            seen["experiments"] += 1
        # Second experiment: its row and first trials written, transaction still open.
        if statement.startswith("INSERT INTO trials") and seen["experiments"] == 2:
            os._exit(9)
    sync_all(db, Path(sys.argv[2]))
""")


def test_process_killed_mid_sync_leaves_database_consistent(nni_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'killed.sqlite'}"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, url, str(nni_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 9, proc.stderr
    db = Database(url)
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
        assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
        # Only the first experiment was committed; nothing of the second remains.
        assert conn.execute(text("SELECT nni_id FROM experiments")).scalars().all() == ["expA"]
        assert conn.execute(text("SELECT count(*) FROM trials")).scalar() == 60
    assert sync_all(db, nni_dir).errors == []
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Trial)) == 130
    db.dispose()


def test_read_sqlite_matches_nni_replay_rules(tmp_path):
    path = tmp_path / "e" / "db" / "nni.sqlite"
    written = write_nni_sqlite(path, "e", n_trials=20, seed=4)
    raw = read_sqlite(path)
    assert raw.nni_id == "e" and raw.config["trialCommand"].startswith("python -m trials.mlp")
    by_id = {t.trial_job_id: t for t in raw.trials}
    for w in written:
        t = by_id[w["trial_job_id"]]
        assert t.parameters == w["parameters"] and t.status == w["status"]
        assert (t.final is None) == (w["final"] is None)
        assert t.start_time is not None and t.end_time is not None
    assert read_registry(tmp_path / "absent") == []
