"""A stopped experiment's ``db/nni.sqlite``, opened read-only (no NNI process needed); the file is
not trusted. The replay of ``TrialJobEvent`` rows follows NNI's own
``NNIDataStore.getTrialJobsByReplayEvents``."""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from storage.errors import SourceError
from storage.nni.reconcile import reconcile_parameters, start_with
from storage.nni.records import (
    ParameterSets,
    RawExperiment,
    RawTrial,
    RegistryEntry,
    attach_metrics,
    hyper_parameters,
    int_or_none,
    text_commands,
    text_value,
)
from trials.contract import TERMINAL_STATUSES

# Part of every source stamp: raise it when the reader changes what it makes of the same file, so
# that the next sync reads stopped experiments again (2: trials' parameters from their metrics;
# 3: Hyperband's text parameter ids, and its short-budget trials stored as partial).
READER_VERSION = 3


def source_stamp(db_path: Path) -> str | None:
    """Size and mtime of nni.sqlite and its WAL (changes whenever NNI writes), and the reader's
    version."""
    parts = []
    for p in (db_path, Path(str(db_path) + "-wal")):
        try:
            st = p.stat()
        except OSError:
            continue
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return f"r{READER_VERSION}|" + "|".join(parts) if parts else None


# Bounds of the work one nni.sqlite may cost (an upload is untrusted; a registry file may be
# damaged): NNI's own files stay far below them (a 200-trial, 100-epoch search has ~20,000 metric
# rows of ~300 bytes).
READ_SECONDS = 60.0
MAX_EVENT_ROWS = 500_000
MAX_METRIC_ROWS = 2_000_000
MAX_VALUE_BYTES = 1_000_000
NNI_TABLES = {
    "ExperimentProfile": {"params", "id", "startTime", "endTime", "revision"},
    "TrialJobEvent": {"trialJobId", "event", "data", "sequenceId", "timestamp"},
    "MetricData": {"trialJobId", "parameterId", "type", "sequence", "data"},
}


def sqlite_uri(db_path: Path, immutable: bool) -> str:
    """A read-only SQLite URI for ``db_path``: percent-encoded, so a '?', '#' or '%' in a directory
    name stays part of the path instead of starting the query string."""
    path = urllib.parse.quote(str(Path(db_path).absolute()), safe="/")
    return f"file:{path}?mode=ro" + ("&immutable=1" if immutable else "")


def _check_schema(conn: sqlite3.Connection, db_path: Path) -> None:
    """Only NNI's three tables are read, and only when they are plain tables: a view, trigger or
    virtual table under those names could run any query (a recursive one without end) or lie."""
    objects = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    for kind, name, _tbl, _sql in objects:
        if kind in ("view", "trigger"):
            raise SourceError(
                f"{db_path} has a {kind} {str(name)[:60]!r}: NNI's database has none, so it is "
                "not read"
            )
    tables = {name: sql for kind, name, _t, sql in objects if kind == "table"}
    for table, needed in NNI_TABLES.items():
        sql = tables.get(table)
        if sql is None:
            raise SourceError(f"{db_path} has no table {table}: not an NNI experiment database")
        if str(sql).lstrip().upper().startswith("CREATE VIRTUAL"):
            raise SourceError(f"{db_path}: {table} is a virtual table, not NNI's plain table")
        columns = conn.execute(f'PRAGMA table_xinfo("{table}")').fetchall()
        # hidden != 0: a generated column, computed on every read by an expression of the file's.
        if any(c[6] != 0 for c in columns):
            raise SourceError(f"{db_path}: {table} has generated columns; NNI's has none")
        missing = needed - {c[1] for c in columns}
        if missing:
            raise SourceError(f"{db_path}: {table} lacks columns {sorted(missing)}")


def _as_text(column: str) -> str:
    """SQL for a column NNI declares as text, as text whatever the file holds in it (done by
    SQLite: a Python conversion per value cost a third of the read)."""
    return (f"CASE typeof({column}) WHEN 'text' THEN {column} WHEN 'null' THEN NULL "
            f"WHEN 'blob' THEN 'x' || hex({column}) ELSE CAST({column} AS TEXT) END")  # fmt: skip


def _check_size(conn: sqlite3.Connection, table: str, columns: list[str], cap: int) -> None:
    """At most ``cap`` rows, no value over ``MAX_VALUE_BYTES``: checked by one scan in SQLite
    before any row is read into Python."""
    longest = ", ".join(f"coalesce(length({c}), 0)" for c in columns)
    n, size = conn.execute(f"SELECT count(*), max(max({longest}, 0)) FROM {table}").fetchone()
    if n > cap:
        raise SourceError(f"{n} rows in {table}: at most {cap} are read")
    if size is not None and size > MAX_VALUE_BYTES:
        raise SourceError(f"a value of {size} bytes in {table}: at most {MAX_VALUE_BYTES} allowed")


def read_sqlite(
    db_path: Path,
    entry: RegistryEntry | None = None,
    *,
    immutable: bool | None = None,
    seconds: float | None = None,
    max_trials: int | None = None,
) -> RawExperiment:
    """An experiment from its nni.sqlite, opened read-only; the file is not trusted.

    ``immutable`` (default: when there is no write-ahead log beside the file, i.e. NNI is not
    writing it) opens it without locks or side files; ``seconds`` (default ``READ_SECONDS``)
    bounds the whole read; ``max_trials`` refuses a file of more trials before any is read (what
    a read holds in memory grows with them).
    """
    seconds = READ_SECONDS if seconds is None else seconds
    if not db_path.exists():
        raise SourceError(f"no NNI database at {db_path}")
    if immutable is None:
        immutable = not Path(str(db_path) + "-wal").exists()
    stamp = source_stamp(db_path)
    deadline = time.monotonic() + seconds
    try:
        conn = sqlite3.connect(sqlite_uri(db_path, immutable), uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise SourceError(f"cannot open {db_path} read-only: {exc}") from exc
    # Called every 10,000 SQLite steps: a nonzero answer interrupts the statement.
    conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    trials: dict[str, RawTrial] = {}
    sets: ParameterSets = {}
    try:
        # No SQL function of the file's schema runs (defence in depth beside _check_schema).
        conn.execute("PRAGMA trusted_schema=OFF")
        _check_schema(conn, db_path)
        profile = conn.execute(
            "SELECT params, id, startTime, endTime FROM ExperimentProfile "
            "ORDER BY revision DESC LIMIT 1"
        ).fetchone()
        if profile is not None and any(
            isinstance(v, str | bytes) and len(v) > MAX_VALUE_BYTES for v in profile
        ):
            raise SourceError(f"ExperimentProfile value over {MAX_VALUE_BYTES} bytes in {db_path}")
        _check_size(conn, "TrialJobEvent", ["trialJobId", "event", "data"], MAX_EVENT_ROWS)
        _check_size(conn, "MetricData", ["trialJobId", "parameterId", "type", "data"],
                    MAX_METRIC_ROWS)  # fmt: skip
        if max_trials is not None:
            (n_trials,) = conn.execute(
                "SELECT COUNT(DISTINCT trialJobId) FROM TrialJobEvent"
            ).fetchone()
            if n_trials > max_trials:
                raise SourceError(f"{n_trials} trials in {db_path}: at most {max_trials} allowed")
        # Rows are streamed from the cursor, never fetched whole.
        events = conn.execute(
            f"SELECT {_as_text('trialJobId')}, {_as_text('event')}, {_as_text('data')}, "
            "sequenceId, timestamp FROM TrialJobEvent ORDER BY rowid"
        )
        _replay_events(events, trials, sets)
        # Metrics as stored (the bulk of the file: no per-value conversion): a job id that is
        # not text matches no trial, and parse keeps a metric that is not text as raw data.
        metrics = conn.execute(
            "SELECT trialJobId, parameterId, type, sequence, data FROM MetricData ORDER BY rowid"
        )
        attach_metrics(trials, metrics)
    except sqlite3.OperationalError as exc:
        if time.monotonic() > deadline:
            raise SourceError(f"reading {db_path} took over {seconds:.0f} s: stopped") from exc
        raise SourceError(f"cannot read {db_path}: {exc}") from exc
    except (sqlite3.Error, RecursionError, MemoryError) as exc:
        raise SourceError(f"cannot read {db_path}: {type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()

    config: dict[str, Any] = {}
    nni_id = entry.nni_id if entry else db_path.parent.parent.name
    start = end = None
    if profile is not None:
        config = text_commands(hyper_parameters(text_value(profile[0])) or {})
        nni_id = text_value(profile[1]) or nni_id
        start, end = int_or_none(profile[2]), int_or_none(profile[3])

    reconcile_parameters(trials, sets)
    name = config.get("experimentName")
    return RawExperiment(
        nni_id=nni_id,
        name=text_value(name) if name is not None else (entry.name if entry else None),
        status=entry.status if entry else "STOPPED",
        config=config,
        start_time=start if start is not None else (entry.start_time if entry else None),
        end_time=end if end is not None else (entry.end_time if entry else None),
        source="sqlite",
        source_stamp=stamp,
        trials=list(trials.values()),
    )


def _replay_events(
    events: Iterable[tuple[Any, ...]], trials: dict[str, RawTrial], sets: ParameterSets
) -> None:
    """NNI's replay of TrialJobEvent rows (``getTrialJobsByReplayEvents``), in arrival order."""
    for job_id, event, data, seq_id, ts in events:
        if not job_id:
            continue
        trial = trials.get(job_id)
        if trial is None:
            trial = RawTrial(job_id, "UNKNOWN", None, {}, None, None)
            trials[job_id] = trial
        ts = int_or_none(ts)
        if event == "RUNNING" and ts is not None:
            trial.start_time = ts
        elif trial.start_time is None and ts is not None and event in (
            TERMINAL_STATUSES | {"WAITING"}
        ):
            trial.start_time = ts
        if event in TERMINAL_STATUSES:
            trial.end_time = ts
        if event == "USER_TO_CANCEL":
            trial.status = "USER_CANCELED"
        elif event == "ADD_CUSTOMIZED":
            trial.status = "WAITING"
        elif event != "ADD_HYPERPARAMETER":
            trial.status = event or "UNKNOWN"
        start_with(trial, data, sets)
        if trial.sequence_id is None:
            trial.sequence_id = int_or_none(seq_id)
