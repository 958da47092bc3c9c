"""Concurrent readers and writers: a read sees one snapshot, and the writers of one experiment
(sync, import, delete) take turns. Both were races the soak test with writers found (a 500 from
an answer built half before and half after a delete; a 409 from an import under a deleted
experiment)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select
from synthetic_nni import make_nni_dir

from storage.ingest import delete_experiment, lock_experiment
from storage.models import Trial
from storage.sync import sync_all


def test_a_snapshot_session_does_not_see_a_concurrent_delete(db, tmp_path):
    sync_all(db, make_nni_dir(tmp_path, {"expS": {"n_trials": 5, "seed": 1}}))
    count = select(func.count()).select_from(Trial)
    with db.session_scope(snapshot=True) as reader:
        assert reader.scalar(count) == 5
        with db.session_scope() as writer:
            delete_experiment(writer, "expS")
        assert reader.scalar(count) == 5  # still the snapshot of its first query
    with db.session_scope(snapshot=True) as later:
        assert later.scalar(count) == 0


def test_writers_of_one_experiment_take_turns(db, tmp_path):
    sync_all(db, make_nni_dir(tmp_path, {"expW": {"n_trials": 5, "seed": 1}}))
    done = threading.Event()

    def delete() -> None:
        with db.session_scope() as s:
            delete_experiment(s, "expW")
        done.set()

    with db.session_scope() as first:
        lock_experiment(first, "expW")
        other = threading.Thread(target=delete)
        other.start()
        time.sleep(1.0)
        assert not done.is_set()  # the delete waits for the first writer's transaction
    other.join(timeout=30)
    assert done.is_set()
