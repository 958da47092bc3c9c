"""NNI's manager log: the one durable trace of which trials the assessor stopped."""

from __future__ import annotations

import re
from pathlib import Path

from storage.nni.records import RawExperiment
from trials.contract import EARLY_STOPPED

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
            trial.status = EARLY_STOPPED
