"""Read NNI experiments into plain records: the registry, a running manager's REST API, or a
stopped experiment's ``db/nni.sqlite`` (opened read-only, no NNI process needed).

Both sources yield the same ``RawExperiment`` so ingest has one code path. The replay of
``TrialJobEvent`` rows follows NNI's own ``NNIDataStore.getTrialJobsByReplayEvents``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from storage.errors import SourceError
from storage.limits import clean_json

# An int for most tuners; Hyperband's is text, "<bracket>_<round>_<index>" (e.g. "0-4_1_3").
ParameterId = int | str
MAX_ID_CHARS = 64
ParameterSets = dict[ParameterId, dict[str, Any]]  # every set NNI handed out, by its id
TERMINAL_EVENTS = {"SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"}


@dataclass
class RegistryEntry:
    nni_id: str
    port: int | None
    status: str
    name: str | None
    log_dir: str | None
    prefix_url: str | None
    start_time: int | None
    end_time: int | None


@dataclass
class RawTrial:
    trial_job_id: str
    status: str
    sequence_id: int | None
    parameters: dict[str, Any]
    start_time: int | None
    end_time: int | None
    final: str | None = None  # NNI's stored text of the first FINAL metric
    intermediate: list[str] = field(default_factory=list)  # stored text, in sequence order
    parameter_id: ParameterId | None = None  # the parameter set NNI's trial record names
    reported_parameter_id: ParameterId | None = None  # the set the trial's own metrics name


@dataclass
class RawExperiment:
    nni_id: str
    name: str | None
    status: str
    config: dict[str, Any]
    start_time: int | None
    end_time: int | None
    source: str
    source_stamp: str | None
    trials: list[RawTrial]


def _parameter_id(value: Any) -> ParameterId | None:
    """NNI's id of a parameter set: an int for most tuners, text for Hyperband ("0-4_1_3")."""
    number = _int_or_none(value)
    if number is not None:
        return number
    if isinstance(value, str) and value and value != "N/A" and len(value) <= MAX_ID_CHARS:
        return value
    return None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None and value != "N/A" else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        return None


def read_registry(nni_dir: Path) -> list[RegistryEntry]:
    """Experiments listed in ``<nni_dir>/.experiment``; an absent file means none."""
    path = Path(nni_dir) / ".experiment"
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read NNI registry {path}: {exc}") from exc
    entries = []
    for key, item in data.items():
        if not isinstance(item, dict):  # very old nnictl wrote lists; nnictl itself drops them
            continue
        entries.append(
            RegistryEntry(
                nni_id=str(item.get("id", key)),
                port=_int_or_none(item.get("port")),
                status=str(item.get("status", "UNKNOWN")),
                name=item.get("experimentName"),
                log_dir=item.get("logDir") or None,
                prefix_url=item.get("prefixUrl") or None,
                start_time=_int_or_none(item.get("startTime")),
                end_time=_int_or_none(item.get("endTime")),
            )
        )
    return entries


def experiment_db_path(entry: RegistryEntry, nni_dir: Path) -> Path:
    """``<logDir>/<id>/db/nni.sqlite``; logDir defaults to the NNI directory itself. A logDir
    that does not exist here falls back to the NNI directory: the registry holds the paths of the
    machine that ran NNI, which differ where the directory is mounted elsewhere (a container)."""
    if entry.log_dir and (Path(entry.log_dir) / entry.nni_id).exists():
        base = Path(entry.log_dir)
    else:
        base = Path(nni_dir)
    return base / entry.nni_id / "db" / "nni.sqlite"


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


def _hyper_parameters(text: str | None) -> dict[str, Any] | None:
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return clean_json(value) if isinstance(value, dict) else None


def _text_commands(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with its trial command as text whatever the file holds there (the command is
    parsed for --model/--dataset/--seed; NNI itself only accepts a string)."""
    if "trialCommand" in config and not isinstance(config["trialCommand"], str | None):
        config = {**config, "trialCommand": json.dumps(config["trialCommand"], default=str)}
    trial = config.get("trial")
    if isinstance(trial, dict) and not isinstance(trial.get("command"), str | None):
        command = json.dumps(trial["command"], default=str)
        config = {**config, "trial": {**trial, "command": command}}
    return config


def _parameters_of(hparam: dict[str, Any] | None) -> dict[str, Any]:
    if not hparam:
        return {}
    params = hparam.get("parameters", {})
    return params if isinstance(params, dict) else {"value": params}


def _start_with(trial: RawTrial, hparam: dict[str, Any], sets: ParameterSets) -> None:
    """Record the parameter set NNI says ``trial`` was started with (and every set by its id)."""
    params = _parameters_of(hparam)
    pid = _parameter_id(hparam.get("parameter_id"))
    if pid is not None:
        sets.setdefault(pid, params)
    if not trial.parameters:  # the first set is the one the trial was started with
        trial.parameters = params
        trial.parameter_id = pid


def reconcile_parameters(trials: dict[str, RawTrial], sets: ParameterSets) -> None:
    """Give each trial the parameter set it really trained with.

    NNI 3.0's local training service can hand two trials started together each other's
    parameter set: the trial job's record names one set while the trial process receives the
    other, trains with it and reports its metrics under that set's id (seen here in a third of
    the trials of searches with trialConcurrency 2). The id in the metrics is the truth. A trial
    without metrics whose recorded set was reported by another trial got that trial's recorded
    set: the two swapped.
    """
    claimed = {t.reported_parameter_id: t for t in trials.values()
               if t.reported_parameter_id is not None}  # fmt: skip
    actual: dict[str, ParameterId] = {}
    for t in trials.values():
        if t.reported_parameter_id is not None:
            actual[t.trial_job_id] = t.reported_parameter_id
            continue
        partner = claimed.get(t.parameter_id) if t.parameter_id is not None else None
        if partner is not None and partner.parameter_id not in claimed:
            actual[t.trial_job_id] = partner.parameter_id  # type: ignore[assignment]
    for t in trials.values():
        pid = actual.get(t.trial_job_id)
        if pid is not None and pid != t.parameter_id and pid in sets:
            t.parameters, t.parameter_id = sets[pid], pid


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


def _text(value: Any) -> str | None:
    """A column NNI declares as text, whatever the file holds in it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def read_sqlite(
    db_path: Path,
    entry: RegistryEntry | None = None,
    *,
    immutable: bool | None = None,
    seconds: float | None = None,
) -> RawExperiment:
    """An experiment from its nni.sqlite, opened read-only; the file is not trusted.

    ``immutable`` (default: when there is no write-ahead log beside the file, i.e. NNI is not
    writing it) opens it without locks or side files; ``seconds`` (default ``READ_SECONDS``)
    bounds the whole read.
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
        _attach_metrics(trials, metrics)
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
        config = _text_commands(_hyper_parameters(_text(profile[0])) or {})
        nni_id = _text(profile[1]) or nni_id
        start, end = _int_or_none(profile[2]), _int_or_none(profile[3])

    reconcile_parameters(trials, sets)
    name = config.get("experimentName")
    return RawExperiment(
        nni_id=nni_id,
        name=_text(name) if name is not None else (entry.name if entry else None),
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
        ts = _int_or_none(ts)
        if event == "RUNNING" and ts is not None:
            trial.start_time = ts
        elif trial.start_time is None and ts is not None and event in (
            TERMINAL_EVENTS | {"WAITING"}
        ):
            trial.start_time = ts
        if event in TERMINAL_EVENTS:
            trial.end_time = ts
        if event == "USER_TO_CANCEL":
            trial.status = "USER_CANCELED"
        elif event == "ADD_CUSTOMIZED":
            trial.status = "WAITING"
        elif event != "ADD_HYPERPARAMETER":
            trial.status = event or "UNKNOWN"
        hparam = _hyper_parameters(data)
        if hparam is not None:
            _start_with(trial, hparam, sets)
        if trial.sequence_id is None:
            trial.sequence_id = _int_or_none(seq_id)


def _attach_metrics(trials: dict[str, RawTrial], metrics: Any) -> None:
    """``metrics``: (trial job id, parameter id, type, sequence, data) in arrival order."""
    periodic: dict[str, list[tuple[int, str]]] = {}
    for job_id, parameter_id, mtype, sequence, data in metrics:
        trial = trials.get(job_id)
        if trial is None:
            continue
        if trial.reported_parameter_id is None:
            trial.reported_parameter_id = _parameter_id(parameter_id)
        if mtype == "FINAL":
            if trial.final is None:  # NNI, too, keeps the first FINAL
                trial.final = data
        elif mtype == "PERIODICAL":
            periodic.setdefault(job_id, []).append((_int_or_none(sequence) or 0, data))
    for job_id, items in periodic.items():
        items.sort(key=lambda it: it[0])  # stable: ties keep arrival order
        trials[job_id].intermediate = [d for _, d in items]


def _rest_base(port: int, prefix: str | None) -> str:
    parts = [f"http://127.0.0.1:{port}", prefix or "", "api/v1/nni"]
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def rest_alive(entry: RegistryEntry, timeout: float = 1.0) -> str | None:
    """The manager's status (``check-status``) or None when nothing answers on its port."""
    if entry.port is None:
        return None
    try:
        resp = httpx.get(f"{_rest_base(entry.port, entry.prefix_url)}/check-status",
                         timeout=timeout)
        resp.raise_for_status()
        return str(resp.json().get("status", "RUNNING"))
    except (httpx.HTTPError, ValueError):
        return None


def read_rest(entry: RegistryEntry, status: str, timeout: float = 10.0) -> RawExperiment:
    """A running experiment through its manager's REST API."""
    assert entry.port is not None
    base = _rest_base(entry.port, entry.prefix_url)
    try:
        with httpx.Client(timeout=timeout) as client:
            profile = client.get(f"{base}/experiment").raise_for_status().json()
            jobs = client.get(f"{base}/trial-jobs").raise_for_status().json()
            metrics = client.get(f"{base}/metric-data").raise_for_status().json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SourceError(f"NNI manager on port {entry.port} did not answer: {exc}") from exc
    trials: dict[str, RawTrial] = {}
    sets: ParameterSets = {}
    for job in jobs:
        trial = RawTrial(
            trial_job_id=job["trialJobId"],
            status=str(job.get("status", "UNKNOWN")),
            sequence_id=_int_or_none(job.get("sequenceId")),
            parameters={},
            start_time=_int_or_none(job.get("startTime")),
            end_time=_int_or_none(job.get("endTime")),
        )
        hps = job.get("hyperParameters") or []
        hparam = _hyper_parameters(hps[0]) if hps else None
        if hparam is not None:
            _start_with(trial, hparam, sets)
        trials[trial.trial_job_id] = trial
    _attach_metrics(
        trials,
        (
            (m.get("trialJobId"), m.get("parameterId"), m.get("type"), m.get("sequence"),
             m.get("data"))
            for m in metrics
        ),
    )  # fmt: skip
    reconcile_parameters(trials, sets)
    config = profile.get("params") or {}
    config = _text_commands(config) if isinstance(config, dict) else {}
    return RawExperiment(
        nni_id=profile.get("id") or entry.nni_id,
        name=config.get("experimentName") or entry.name,
        status=status,
        config=config,
        start_time=_int_or_none(profile.get("startTime")) or entry.start_time,
        end_time=_int_or_none(profile.get("endTime")),
        source="rest",
        source_stamp=None,
        trials=list(trials.values()),
    )


# NNI 3.0's manager logs, at its default INFO level, every command its dispatcher sends; "KI" is the
# assessor (or Hyperband) killing a trial. A user's `nnictl` cancel never writes it.
_ASSESSOR_KILL = re.compile(r'received command from dispatcher: KI, "?(\w+)"?')
MAX_LOG_BYTES = 64 * 1024 * 1024


def assessor_stopped(experiment_dir: Path) -> set[str]:
    """Trial job ids that NNI's assessor stopped, from ``<experiment>/log/nnimanager.log``.

    NNI 3.0's local training service records such a trial as USER_CANCELED (its compat layer
    sets the early-stop flag only after the trial-end callback has run), so the manager's log is
    the one durable trace that the stop was the assessor's. Read line by line, at most
    MAX_LOG_BYTES; a missing or unreadable log means "none known"."""
    path = experiment_dir / "log" / "nnimanager.log"
    stopped: set[str] = set()
    try:
        with path.open("rb") as log:
            read = 0
            for raw in log:
                read += len(raw)
                if read > MAX_LOG_BYTES:
                    break
                if b"dispatcher: KI" in raw:
                    m = _ASSESSOR_KILL.search(raw.decode("utf-8", "replace"))
                    if m:
                        stopped.add(m.group(1))
    except OSError:
        return set()
    return stopped


def mark_assessor_stops(raw: RawExperiment, stopped: set[str]) -> None:
    """A cancelled trial that the assessor stopped is EARLY_STOPPED, as NNI meant to record."""
    for trial in raw.trials:
        if trial.trial_job_id in stopped and trial.status in {"USER_CANCELED", "SYS_CANCELED"}:
            trial.status = "EARLY_STOPPED"


def nni_dir_default() -> Path:
    return Path(os.path.expanduser("~")) / "nni-experiments"
