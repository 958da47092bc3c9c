"""Write parsed NNI experiments into the database, idempotently.

Key: (NNI experiment id, trial job id). Each row carries a fingerprint of its content, so a
re-sync compares fingerprints and writes nothing for an unchanged trial: syncing twice changes
no row. One experiment is one transaction (the caller's ``session_scope``), so a crash mid-way
leaves the experiment as it was before, never half-written. Bulk Core statements keep the
ingest rate in the thousands of trials per second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from storage.errors import NotFound
from storage.limits import fit_experiment_rows
from storage.models import DataVersion, Experiment, Trial, TrialLayer
from storage.nni.records import RawExperiment
from storage.parse import DeadlinePassed, parse_experiment


@dataclass
class IngestResult:
    nni_id: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    experiment_changed: bool = False


def current_stamp(session: Session, nni_id: str) -> tuple[str | None, str | None] | None:
    """(source, source_stamp) of a stored experiment, None if it is not stored."""
    row = session.execute(
        select(Experiment.source, Experiment.source_stamp).where(Experiment.nni_id == nni_id)
    ).first()
    return (row[0], row[1]) if row else None


def lock_experiment(session: Session, nni_id: str) -> None:
    """Serialize the writers of one experiment (sync, import, delete) until the transaction
    ends: an import that read "stored" and then wrote trials under an experiment that a delete
    had just removed failed on its foreign key (found by the soak test with writers).
    PostgreSQL: a transaction-scoped advisory lock on the id; SQLite: its write lock, taken now
    by a write that changes nothing (SQLite has one writer at a time, so that is enough)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": nni_id})
    else:
        session.execute(update(DataVersion).where(DataVersion.id == 1).values(
            version=DataVersion.version))  # fmt: skip


def ingest_experiment(
    session: Session, raw: RawExperiment, deadline: float | None = None
) -> IngestResult:
    """Store ``raw`` (one transaction: the caller's session scope). ``deadline`` (a
    ``time.monotonic()`` value) bounds the parse and the writes: past it, ``DeadlinePassed``
    and the transaction rolls back."""
    lock_experiment(session, raw.nni_id)
    parsed = parse_experiment(raw, deadline)
    # What the columns cannot hold (PostgreSQL's ranges and lengths) is made to fit or refused.
    exp_row, parsed_trials = fit_experiment_rows(parsed.row, parsed.trials)
    result = IngestResult(nni_id=raw.nni_id)
    existing = session.execute(
        select(Experiment.id, Experiment.fingerprint, Experiment.source_stamp).where(
            Experiment.nni_id == raw.nni_id
        )
    ).first()
    if existing is None:
        exp_id = session.execute(
            insert(Experiment).values(**exp_row).returning(Experiment.id)
        ).scalar_one()
        result.experiment_changed = True
    else:
        exp_id = existing[0]
        if existing[1] != exp_row["fingerprint"] or existing[2] != exp_row["source_stamp"]:
            session.execute(update(Experiment).where(Experiment.id == exp_id).values(**exp_row))
            result.experiment_changed = True

    stored = {
        job: (tid, fp)
        for tid, job, fp in session.execute(
            select(Trial.id, Trial.trial_job_id, Trial.fingerprint).where(
                Trial.experiment_id == exp_id
            )
        )
    }
    new: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    changed: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
    seen: set[str] = set()
    for trial, layers in parsed_trials:
        job = trial["trial_job_id"]
        if job in seen:  # NNI never repeats a job id; if a source does, the first one wins
            continue
        seen.add(job)
        if job not in stored:
            new.append((trial, layers))
        elif stored[job][1] != trial["fingerprint"]:
            changed.append((stored[job][0], trial, layers))
        else:
            result.unchanged += 1

    # Core executemany on the tables (not ORM bulk, not RETURNING): the fast path on both
    # SQLite and psycopg; the new ids are then read back in one query.
    conn = session.connection()
    layer_rows: list[dict[str, Any]] = []
    if new:
        conn.execute(Trial.__table__.insert(), [{**t, "experiment_id": exp_id} for t, _ in new])
        ids = dict(
            conn.execute(
                select(Trial.trial_job_id, Trial.id).where(Trial.experiment_id == exp_id)
            ).all()
        )
        for t, layers in new:
            tid = ids[t["trial_job_id"]]
            layer_rows.extend({**lr, "trial_id": tid} for lr in layers)
        result.inserted = len(new)
    if changed:
        cols = [c for c in changed[0][1] if c != "trial_job_id"]
        stmt = (
            update(Trial.__table__)
            .where(Trial.__table__.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in cols})
        )
        conn.execute(stmt, [{"_id": tid, **{c: t[c] for c in cols}} for tid, t, _ in changed])
        conn.execute(delete(TrialLayer).where(TrialLayer.trial_id.in_([c[0] for c in changed])))
        for tid, _t, layers in changed:
            layer_rows.extend({**lr, "trial_id": tid} for lr in layers)
        result.updated = len(changed)
    if layer_rows:
        conn.execute(TrialLayer.__table__.insert(), layer_rows)
    if result.experiment_changed or result.inserted or result.updated:
        # Same transaction as the data: a reader never sees new data with an old version.
        conn.execute(update(DataVersion).where(DataVersion.id == 1).values(
            version=DataVersion.version + 1))  # fmt: skip
    if deadline is not None and time.monotonic() > deadline:  # before the caller commits
        raise DeadlinePassed(f"storing {len(new) + len(changed)} trials ran past the deadline")
    return result


def delete_experiment(session: Session, nni_id: str) -> int:
    """Delete a stored experiment with its trials and layer rows (foreign keys cascade); returns
    how many trials went. NNI's own files are untouched, so a sync that still finds the
    experiment in NNI's registry ingests it again."""
    lock_experiment(session, nni_id)
    exp_id = session.scalar(select(Experiment.id).where(Experiment.nni_id == nni_id))
    if exp_id is None:
        raise NotFound(f"experiment {nni_id!r} is not in the database")
    n_trials = session.scalar(
        select(func.count()).select_from(Trial).where(Trial.experiment_id == exp_id)
    )
    session.execute(delete(Experiment).where(Experiment.id == exp_id))
    session.execute(update(DataVersion).where(DataVersion.id == 1).values(
        version=DataVersion.version + 1))  # fmt: skip
    return int(n_trials or 0)
