"""Reading NNI's records: each trial gets the parameter set it really trained with."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from synthetic_nni import write_nni_sqlite, write_registry

from storage.db import Database
from storage.errors import SourceError
from storage.nni.sqlite import read_sqlite, source_stamp
from storage.queries import get_trial
from storage.sync import sync_all


def _swap_reports(db: Path, renames: dict[str, str | None]) -> None:
    """Rewrite MetricData as NNI 3.0 leaves it after a swap: trial job -> the parameter id its
    metrics carry (None: the trial reported nothing)."""
    with sqlite3.connect(db) as conn:
        for job, pid in renames.items():
            if pid is None:
                conn.execute("DELETE FROM MetricData WHERE trialJobId = ?", (job,))
            else:
                sql = "UPDATE MetricData SET parameterId = ? WHERE trialJobId = ?"
                conn.execute(sql, (pid, job))


def test_trials_get_the_parameter_set_their_metrics_name(tmp_path: Path) -> None:
    db = tmp_path / "nni.sqlite"
    written = write_nni_sqlite(db, "swap", n_trials=6, seed=5)
    recorded = [w["parameters"] for w in written]  # parameter set i was recorded for T0000i
    # T0/T1 swapped and both reported; T2 reported under T3's set and T3 died silently;
    # T4 and T5 are as recorded.
    _swap_reports(db, {"T00000": "1", "T00001": "0", "T00002": "3", "T00003": None})
    trials = {t.trial_job_id: t for t in read_sqlite(db).trials}
    assert trials["T00000"].parameters == recorded[1]
    assert trials["T00001"].parameters == recorded[0]
    assert trials["T00002"].parameters == recorded[3]
    assert trials["T00003"].parameters == recorded[2]  # its partner took its set: the other one
    assert trials["T00004"].parameters == recorded[4]
    assert trials["T00005"].parameters == recorded[5]
    assert [trials[f"T0000{i}"].parameter_id for i in range(6)] == [1, 0, 3, 2, 4, 5]


def test_hyperband_text_parameter_ids_are_reconciled_too(tmp_path: Path) -> None:
    """Hyperband names its parameter sets "<bracket>_<round>_<index>": a swap is undone all the
    same (an int-only reader left such trials with their neighbour's set)."""
    db = tmp_path / "nni.sqlite"
    written = write_nni_sqlite(db, "hyperband", n_trials=3, seed=8)

    def text_id(seq: int) -> str:
        return f"0-3_0_{seq}"

    with sqlite3.connect(db) as conn:
        for job, data in conn.execute(
            "SELECT trialJobId, data FROM TrialJobEvent WHERE event = 'WAITING'"
        ).fetchall():
            hp = json.loads(data)
            hp["parameter_id"] = text_id(hp["parameter_id"])
            conn.execute(
                "UPDATE TrialJobEvent SET data = ? WHERE trialJobId = ? AND event = 'WAITING'",
                (json.dumps(hp), job),
            )
        conn.execute("UPDATE MetricData SET parameterId = '0-3_0_' || parameterId")
    _swap_reports(db, {"T00000": text_id(1), "T00001": text_id(0)})
    trials = {t.trial_job_id: t for t in read_sqlite(db).trials}
    assert trials["T00000"].parameters == written[1]["parameters"]
    assert trials["T00001"].parameters == written[0]["parameters"]
    assert trials["T00002"].parameters == written[2]["parameters"]
    assert [trials[f"T0000{i}"].parameter_id for i in range(3)] == [text_id(1), text_id(0),
                                                                    text_id(2)]  # fmt: skip


def test_a_silent_trial_keeps_its_record_when_no_swap_explains_it(tmp_path: Path) -> None:
    db = tmp_path / "nni.sqlite"
    written = write_nni_sqlite(db, "quiet", n_trials=3, seed=6)
    # T0 reported under T1's set and T1 under T2's: a 3-cycle, not a swap; T2 reported nothing,
    # so which set it ran is unknown and its record stands.
    _swap_reports(db, {"T00000": "1", "T00001": "2", "T00002": None})
    trials = {t.trial_job_id: t for t in read_sqlite(db).trials}
    assert trials["T00000"].parameters == written[1]["parameters"]
    assert trials["T00001"].parameters == written[2]["parameters"]
    assert trials["T00002"].parameters == written[2]["parameters"]


def test_a_new_reader_reads_stopped_experiments_again(tmp_path: Path) -> None:
    nni_dir = tmp_path / "nni-experiments"
    db_file = nni_dir / "old" / "db" / "nni.sqlite"
    written = write_nni_sqlite(db_file, "old", n_trials=4, seed=7)
    write_registry(nni_dir, {"old": {}})
    database = Database(f"sqlite:///{tmp_path / 'results.sqlite'}")
    database.migrate()
    try:
        assert sync_all(database, nni_dir).inserted == 4
        # An earlier reader stored this file's stamp without its version: the file is unchanged,
        # but the next sync must read it again (and fix what the old reader got wrong).
        with database.session_scope() as s:
            s.connection().exec_driver_sql(
                "UPDATE experiments SET source_stamp = ?",
                (str(source_stamp(db_file)).split("|", 1)[1],),
            )
            s.connection().exec_driver_sql(
                "UPDATE trials SET parameters = '{}', fingerprint = 'stale' "
                "WHERE trial_job_id = 'T00001'"
            )
        report = sync_all(database, nni_dir)
        assert report.skipped == 0 and report.updated == 1
        assert sync_all(database, nni_dir).skipped == 1  # and then it is skipped again
        with database.session_scope() as s:
            assert get_trial(s, "old", "T00001").parameters == written[1]["parameters"]
    finally:
        database.dispose()


def test_paths_with_uri_characters_are_read(tmp_path):
    """'?', '#' and '%' in a directory name are part of the path, not of the SQLite URI."""
    path = tmp_path / "runs?mode=rw#x%20y" / "expQ" / "db" / "nni.sqlite"
    write_nni_sqlite(path, "expQ", n_trials=3, seed=1)
    raw = read_sqlite(path)
    assert raw.nni_id == "expQ" and len(raw.trials) == 3
    assert raw.source_stamp is not None


def test_a_read_is_bounded_by_its_deadline(tmp_path):
    path = tmp_path / "expT" / "db" / "nni.sqlite"
    write_nni_sqlite(path, "expT", n_trials=400, epochs=50, seed=1)
    with pytest.raises(SourceError, match=r"took over 0 s: stopped"):
        read_sqlite(path, seconds=0.0)
    assert len(read_sqlite(path, seconds=30).trials) == 400
