"""The whole import is bounded: a deadline over read, parse and store (past it nothing is
kept), a trial count checked before reading, and no server path in what the client is told."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from synthetic_nni import write_nni_sqlite

from service.app import create_app
from storage.ingest import ingest_experiment
from storage.models import Trial
from storage.nni.sqlite import read_sqlite
from storage.parse import DeadlinePassed

OCTETS = {"Content-Type": "application/octet-stream"}


def upload(tmp_path, n_trials: int) -> bytes:
    path = tmp_path / f"src{n_trials}" / "db" / "nni.sqlite"
    write_nni_sqlite(path, "bounded", n_trials=n_trials, seed=3)
    return path.read_bytes()


def test_too_many_trials_are_refused_before_reading(settings, tmp_path) -> None:
    app = create_app(settings.model_copy(update={"max_import_trials": 10}))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        r = c.post("/api/import", content=upload(tmp_path, 11), headers=OCTETS)
        assert r.status_code == 422 and "11 trials" in r.json()["detail"]
        assert "at most 10 allowed" in r.json()["detail"]
        assert "/tmp" not in r.text and "nsr-import" not in r.text
        ok = c.post("/api/import", content=upload(tmp_path, 10), headers=OCTETS)
        assert ok.status_code == 200


def test_no_server_path_in_a_refusal(client) -> None:
    r = client.post("/api/import", content=b"not a database at all" * 100, headers=OCTETS)
    assert r.status_code == 422
    assert "nsr-import" not in r.text and "/tmp" not in r.text and "the upload" in r.text


def test_past_the_deadline_nothing_is_stored(db, tmp_path) -> None:
    path = tmp_path / "e" / "db" / "nni.sqlite"
    write_nni_sqlite(path, "late", n_trials=30, seed=2)
    raw = read_sqlite(path)
    with pytest.raises(DeadlinePassed):
        with db.session_scope() as s:
            ingest_experiment(s, raw, deadline=time.monotonic() - 1)
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Trial)) == 0
        ingest_experiment(s, raw, deadline=time.monotonic() + 60)
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Trial)) == 30
