"""One sync pass: every experiment in NNI's registry into the database.

Each experiment is read first (REST when its manager answers, else its nni.sqlite) and then
written in its own transaction, so a failure (source or database) costs that experiment's
update only: the database keeps its previous consistent state and the pass goes on.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from storage.db import Database
from storage.errors import InvalidValue, SourceError, StorageError
from storage.ingest import IngestResult, current_stamp, ingest_experiment
from storage.limits import clean_text
from storage.models import SyncError
from storage.nni.manager_log import assessor_stopped, mark_assessor_stops
from storage.nni.records import RegistryEntry
from storage.nni.registry import experiment_db_path, read_registry
from storage.nni.rest import read_rest, rest_alive
from storage.nni.sqlite import READ_SECONDS, read_sqlite, source_stamp
from storage.parse import DeadlinePassed
from storage.schemas import SyncReport

log = logging.getLogger(__name__)


# An experiment id as NNI makes them (8 letters and digits); the registry's id becomes a path.
_NNI_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_ERROR_CHARS = 2000


def _check_id(nni_id: str) -> None:
    if not _NNI_ID.match(nni_id):
        raise InvalidValue(
            f"experiment id {nni_id[:80]!r} is not an NNI experiment id (letters, digits, '-', "
            "'_'; at most 64)"
        )


def sync_entry(db: Database, entry: RegistryEntry, nni_dir: Path) -> IngestResult | None:
    """Ingest one registry entry; None when it is a stopped experiment that did not change."""
    _check_id(entry.nni_id)
    status = rest_alive(entry) if entry.status != "STOPPED" else None
    path = experiment_db_path(entry, nni_dir)
    if status is not None:
        raw = read_rest(entry, status)
    else:
        stamp = source_stamp(path)
        with db.session_scope() as s:
            stored = current_stamp(s, entry.nni_id)
        if stamp is not None and stored == ("sqlite", stamp):
            return None
        raw = read_sqlite(path, entry)
        # The manager is gone: whatever the registry last said, the experiment is not running.
        raw.status = "STOPPED"
    _check_id(raw.nni_id)
    mark_assessor_stops(raw, assessor_stopped(path.parent.parent))
    with db.session_scope() as s:
        result = ingest_experiment(s, raw)
        clear_sync_error(s, entry.nni_id)
        return result


def describe(exc: BaseException) -> str:
    """One line naming what went wrong: our errors as they are, anything else with its type."""
    text = str(exc) if isinstance(exc, StorageError) else f"{type(exc).__name__}: {exc}"
    return clean_text(" ".join(text.split()), MAX_ERROR_CHARS)


def record_sync_error(db: Database, nni_id: str, message: str) -> None:
    """Store ``message`` as the experiment's last sync error (its own transaction)."""
    key = clean_text(nni_id, 64)
    values = {"message": message, "at": int(time.time() * 1000)}
    try:
        with db.session_scope() as s:
            if s.get(SyncError, key) is None:
                s.add(SyncError(nni_id=key, **values))
            else:
                s.execute(update(SyncError).where(SyncError.nni_id == key).values(**values))
    except StorageError as exc:  # the database itself is down: the report still says it
        log.warning("could not record the sync error of %s: %s", nni_id, exc)


def _forget_errors_of_others(db: Database, listed: set[str]) -> None:
    """Sync errors of experiments no longer in the registry (nnictl experiment delete) go."""
    try:
        with db.session_scope() as s:
            s.execute(delete(SyncError).where(SyncError.nni_id.not_in(listed)))
    except StorageError as exc:
        log.warning("could not prune sync errors: %s", exc)


def clear_sync_error(session: Session, nni_id: str) -> None:
    session.execute(delete(SyncError).where(SyncError.nni_id == nni_id))


def sync_all(db: Database, nni_dir: Path) -> SyncReport:
    """One pass over the registry. Whatever goes wrong with one experiment (an unreadable or
    hostile file, a value the database refuses, a bug of ours) is that experiment's sync error,
    stored and reported; the pass goes on with the next experiment."""
    t0 = time.perf_counter()
    report = SyncReport(
        experiments=0, skipped=0, inserted=0, updated=0, unchanged=0, errors=[], seconds=0.0
    )
    try:
        entries = read_registry(nni_dir)
    except Exception as exc:  # noqa: BLE001 - a broken registry is reported, never a 500
        report.errors.append(describe(exc))
        entries = None
    if entries is not None:
        _forget_errors_of_others(db, {clean_text(e.nni_id, 64) for e in entries})
    for entry in entries or []:
        try:
            result = sync_entry(db, entry, nni_dir)
        except Exception as exc:  # noqa: BLE001 - one experiment never stops the pass
            message = describe(exc)
            if not isinstance(exc, StorageError):
                log.exception("sync of experiment %s failed", entry.nni_id)
            else:
                log.warning("sync of experiment %s failed: %s", entry.nni_id, message)
            report.errors.append(f"{clean_text(entry.nni_id, 64)}: {message}")
            record_sync_error(db, entry.nni_id, message)
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


def import_nni_sqlite(
    db: Database, path: Path, seconds: float | None = None, max_trials: int | None = None
) -> IngestResult:
    """Ingest a file that claims to be an NNI experiment database (an upload, untrusted): unlike
    ``ingest_sqlite_file`` it must name its experiment itself, since its path says nothing. The
    whole import (read, parse, store) runs within ``seconds``, a file of more than
    ``max_trials`` trials is refused before it is read, and nothing is kept of an import that
    fails. Any problem with the file is an ``InvalidValue`` naming it, never the server's path."""
    path = Path(path)
    deadline = time.monotonic() + (READ_SECONDS if seconds is None else seconds)

    def without_path(message: str) -> str:
        return message.replace(str(path), "the upload").replace(str(path.parent), "the upload")

    try:
        raw = read_sqlite(path, immutable=True, seconds=seconds, max_trials=max_trials)
    except SourceError as exc:
        raise InvalidValue(
            f"not a readable NNI experiment database: {without_path(str(exc))}"
        ) from exc
    if not raw.config or raw.nni_id == path.parent.parent.name:
        raise InvalidValue("not an NNI experiment database: it has no ExperimentProfile")
    _check_id(raw.nni_id)
    raw.status = "STOPPED"
    limit = f"{seconds:g} s (NSR_IMPORT_SECONDS)" if seconds is not None else "its deadline"
    try:
        with db.session_scope() as s:
            result = ingest_experiment(s, raw, deadline)
            clear_sync_error(s, raw.nni_id)
            return result
    except DeadlinePassed as exc:
        raise InvalidValue(f"the import took over {limit}: nothing was stored ({exc})") from exc
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the file's values do, a 4xx that says so
        log.exception("import of experiment %s failed", raw.nni_id)
        raise InvalidValue(
            f"experiment {raw.nni_id} could not be stored: {without_path(describe(exc))}"
        ) from exc
