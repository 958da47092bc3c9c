"""One sync pass: every experiment in NNI's registry into the database.

Each experiment is read first (REST when its manager answers, else its nni.sqlite) and then
written in its own transaction, so a failure (source or database) costs that experiment's
update only: the database keeps its previous consistent state and the pass goes on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from storage.db import Database
from storage.errors import InvalidValue, SourceError, StorageError
from storage.ingest import IngestResult, current_stamp, ingest_experiment
from storage.nni_reader import (
    RegistryEntry,
    experiment_db_path,
    read_registry,
    read_rest,
    read_sqlite,
    rest_alive,
    source_stamp,
)
from storage.schemas import SyncReport

log = logging.getLogger(__name__)


def sync_entry(db: Database, entry: RegistryEntry, nni_dir: Path) -> IngestResult | None:
    """Ingest one registry entry; None when it is a stopped experiment that did not change."""
    status = rest_alive(entry) if entry.status != "STOPPED" else None
    if status is not None:
        raw = read_rest(entry, status)
    else:
        path = experiment_db_path(entry, nni_dir)
        stamp = source_stamp(path)
        with db.session_scope() as s:
            stored = current_stamp(s, entry.nni_id)
        if stamp is not None and stored == ("sqlite", stamp):
            return None
        raw = read_sqlite(path, entry)
        # The manager is gone: whatever the registry last said, the experiment is not running.
        raw.status = "STOPPED"
    with db.session_scope() as s:
        return ingest_experiment(s, raw)


def sync_all(db: Database, nni_dir: Path) -> SyncReport:
    t0 = time.perf_counter()
    report = SyncReport(
        experiments=0, skipped=0, inserted=0, updated=0, unchanged=0, errors=[], seconds=0.0
    )
    try:
        entries = read_registry(nni_dir)
    except StorageError as exc:
        report.errors.append(str(exc))
        entries = []
    for entry in entries:
        try:
            result = sync_entry(db, entry, nni_dir)
        except StorageError as exc:
            log.warning("sync of experiment %s failed: %s", entry.nni_id, exc)
            report.errors.append(f"{entry.nni_id}: {exc}")
            continue
        report.experiments += 1
        if result is None:
            report.skipped += 1
            continue
        report.inserted += result.inserted
        report.updated += result.updated
        report.unchanged += result.unchanged
    report.seconds = time.perf_counter() - t0
    return report


def ingest_sqlite_file(db: Database, path: Path) -> IngestResult:
    """Ingest one nni.sqlite given by path (no registry needed), e.g. an archived experiment."""
    raw = read_sqlite(Path(path))
    raw.status = "STOPPED"
    with db.session_scope() as s:
        return ingest_experiment(s, raw)


def import_nni_sqlite(db: Database, path: Path) -> IngestResult:
    """Ingest a file that claims to be an NNI experiment database (an upload): unlike
    ``ingest_sqlite_file`` it must name its experiment itself, since its path says nothing."""
    try:
        raw = read_sqlite(Path(path))
    except SourceError as exc:
        raise InvalidValue(f"not a readable NNI experiment database: {exc}") from exc
    if not raw.config or raw.nni_id == Path(path).parent.parent.name:
        raise InvalidValue("not an NNI experiment database: it has no ExperimentProfile")
    raw.status = "STOPPED"
    with db.session_scope() as s:
        return ingest_experiment(s, raw)
