"""Ranges and lengths: what NNI allows is stored on both back ends (64-bit seeds), what no column
can hold is made to fit or refused with a message, and a database DataError is an InvalidValue
(a 4xx), never a 503. SQLite alone hid all of this: PostgreSQL checks every range and length."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlalchemy import insert, select
from synthetic_nni import write_nni_sqlite, write_registry

from storage.errors import InvalidValue
from storage.models import Experiment, Trial, TrialLayer
from storage.queries import list_experiments, list_sync_errors
from storage.sync import ingest_sqlite_file, sync_all


def nni_file(tmp_path, exp_id="expL", hp=None, profile=None):
    path = tmp_path / exp_id / "db" / "nni.sqlite"
    write_nni_sqlite(path, exp_id, n_trials=3, seed=4, report_config=False)
    conn = sqlite3.connect(path)
    if hp is not None:
        conn.execute("UPDATE TrialJobEvent SET data = ? WHERE trialJobId = 'T00000' AND "
                     "event = 'WAITING'", (json.dumps(hp),))  # fmt: skip
    if profile is not None:
        conn.execute("UPDATE ExperimentProfile SET params = ?", (json.dumps(profile),))
    conn.commit()
    conn.close()
    return path


def trial0(db):
    with db.session_scope() as s:
        return s.execute(select(Trial).where(Trial.trial_job_id == "T00000")).scalar_one()


@pytest.mark.parametrize("seed", [2**31, 2**40, 2**63 - 1, -(2**63)])
def test_64_bit_seeds_are_stored_as_they_are(db, tmp_path, seed):
    ingest_sqlite_file(db, nni_file(tmp_path, hp={"parameter_id": 0, "parameters": {
        "layers": "4", "seed": seed}}))  # fmt: skip
    t = trial0(db)
    assert t.seed == seed and t.parameters["seed"] == seed


def test_values_beyond_64_bits_are_null_with_the_raw_value_kept(db, tmp_path):
    ingest_sqlite_file(db, nni_file(tmp_path, hp={"parameter_id": 0, "parameters": {
        "layers": "4", "seed": 2**70, "lambda_4": 1e308 * 10}}))  # fmt: skip
    t = trial0(db)
    assert t.seed is None
    assert t.parameters["seed"] == str(2**70)  # the raw value, as text (no JSON int is that big)
    with db.session_scope() as s:
        lam = s.scalar(select(TrialLayer.lam).where(TrialLayer.trial_id == t.id,
                                                   TrialLayer.layer == 4))  # fmt: skip
    assert lam is None  # inf is no λ


def test_long_names_are_shortened_and_long_ids_refused(db, tmp_path):
    command = f"python -m trials.mlp --model {'m' * 300} --dataset d"
    path = nni_file(tmp_path, profile={"experimentName": "n" * 5000, "trialCommand": command})
    ingest_sqlite_file(db, path)
    with db.session_scope() as s:
        e = s.execute(select(Experiment)).scalar_one()
        assert len(e.name) == 256 and e.name.endswith("…")
        assert len(e.model) == 64
    long_job = tmp_path / "expJ" / "db" / "nni.sqlite"
    write_nni_sqlite(long_job, "expJ", n_trials=2, seed=1)
    conn = sqlite3.connect(long_job)
    conn.execute("UPDATE TrialJobEvent SET trialJobId = ? WHERE trialJobId = 'T00000'", ("J" * 65,))
    conn.commit()
    conn.close()
    with pytest.raises(InvalidValue, match="65 characters long: at most 64"):
        ingest_sqlite_file(db, long_job)


def test_a_data_error_is_an_invalid_value_on_both_back_ends(db):
    """What limits.py would have caught, written past it: PostgreSQL's DataError becomes an
    InvalidValue naming the problem (422), not StorageUnavailable (503); SQLite stores it."""
    row = {"nni_id": "x", "status": "S", "fingerprint": "f", "name": "n" * 300}
    if db.engine.dialect.name == "postgresql":
        with pytest.raises(InvalidValue, match="value not storable: value too long"):
            with db.session_scope() as s:
                s.execute(insert(Experiment).values(**row))
        with pytest.raises(InvalidValue, match="out of range"):
            with db.session_scope() as s:
                s.execute(insert(Experiment).values(nni_id="y", status="S", fingerprint="f",
                                                    start_time=2**63))  # fmt: skip
    else:
        with db.session_scope() as s:
            s.execute(insert(Experiment).values(**row))


def test_a_failing_experiment_is_recorded_and_the_next_one_ingested(db, tmp_path):
    nni_dir = tmp_path / "nni"
    nni_file(nni_dir, "aBad", profile={"trialCommand": "x"})
    conn = sqlite3.connect(nni_dir / "aBad" / "db" / "nni.sqlite")
    conn.execute("UPDATE TrialJobEvent SET trialJobId = ? WHERE trialJobId = 'T00001'", ("J" * 99,))
    conn.commit()
    conn.close()
    nni_file(nni_dir, "zGood")
    write_registry(nni_dir, {"aBad": {}, "zGood": {}})
    report = sync_all(db, nni_dir)
    assert report.experiments == 1 and report.inserted == 3
    assert len(report.errors) == 1 and report.errors[0].startswith("aBad: trial_job_id")
    with db.session_scope() as s:
        errors = list_sync_errors(s)
        assert [e.nni_id for e in errors] == ["aBad"] and "at most 64" in errors[0].message
        assert [e.nni_id for e in list_experiments(s).items] == ["zGood"]
    # Fixed at the source: the next pass stores it and forgets the error.
    conn = sqlite3.connect(nni_dir / "aBad" / "db" / "nni.sqlite")
    conn.execute("UPDATE TrialJobEvent SET trialJobId = 'T00001' WHERE trialJobId = ?", ("J" * 99,))
    conn.commit()
    conn.close()
    assert sync_all(db, nni_dir).errors == []
    with db.session_scope() as s:
        assert list_sync_errors(s) == []
        assert list_experiments(s).total == 2
    # An experiment that left the registry takes its sync error with it.
    (nni_dir / "aBad" / "db" / "nni.sqlite").write_bytes(b"broken")
    write_registry(nni_dir, {"aBad": {}, "zGood": {}})
    assert len(sync_all(db, nni_dir).errors) == 1
    write_registry(nni_dir, {"zGood": {}})
    assert sync_all(db, nni_dir).errors == []
    with db.session_scope() as s:
        assert list_sync_errors(s) == []


def test_an_unexpected_exception_is_recorded_too(db, tmp_path, monkeypatch):
    """Not only StorageError: whatever one experiment raises stays that experiment's error."""
    from storage import sync

    nni_dir = tmp_path / "nni"
    nni_file(nni_dir, "aBoom")
    nni_file(nni_dir, "zGood")
    write_registry(nni_dir, {"aBoom": {}, "zGood": {}})
    real = sync.ingest_experiment

    def boom(session, raw):
        if raw.nni_id == "aBoom":
            raise RecursionError("maximum recursion depth exceeded")
        return real(session, raw)

    monkeypatch.setattr(sync, "ingest_experiment", boom)
    report = sync_all(db, nni_dir)
    assert report.errors == ["aBoom: RecursionError: maximum recursion depth exceeded"]
    assert report.inserted == 3
