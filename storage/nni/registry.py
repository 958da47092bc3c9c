"""NNI's registry of experiments (``<nni_dir>/.experiment``) and where each one's files lie."""

from __future__ import annotations

import json
import os
from pathlib import Path

from storage.errors import SourceError
from storage.nni.records import RegistryEntry, int_or_none


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
                port=int_or_none(item.get("port")),
                status=str(item.get("status", "UNKNOWN")),
                name=item.get("experimentName"),
                log_dir=item.get("logDir") or None,
                prefix_url=item.get("prefixUrl") or None,
                start_time=int_or_none(item.get("startTime")),
                end_time=int_or_none(item.get("endTime")),
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


def nni_dir_default() -> Path:
    return Path(os.path.expanduser("~")) / "nni-experiments"
