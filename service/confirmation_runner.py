"""Starting a confirmation experiment: write the plan's YAML, ``nnictl create`` it.

The experiment runs under NNI like any search (its own UI, the service's background sync picks
its trials up); its name marks it as a confirmation (``storage.parse.confirmation_name``).
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from service.quickstart import QuickstartError, create_experiment, free_port_from
from service.settings import Settings, data_dir
from storage.errors import SourceError
from storage.schemas import ConfirmationPlan, ConfirmationStarted

FIRST_NNI_PORT = 8081


def write_plan(plan: ConfirmationPlan, directory: Path | None = None) -> Path:
    directory = directory or data_dir() / "confirmations"
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"confirm-{plan.model}-{plan.dataset}-{stamp}.yml"
    path.write_text(yaml.safe_dump(plan.experiment, sort_keys=False, allow_unicode=True))
    return path


def start_confirmation(plan: ConfirmationPlan, settings: Settings) -> ConfirmationStarted:
    """Start the plan under NNI; a failure of nnictl is a SourceError with its last lines."""
    path = write_plan(plan)
    port = free_port_from("127.0.0.1", FIRST_NNI_PORT)
    try:
        nni_id = create_experiment(path, port)
    except QuickstartError as exc:
        raise SourceError(str(exc)) from exc
    return ConfirmationStarted(
        plan=plan, started=True, nni_id=nni_id, nni_url=f"http://127.0.0.1:{port}/",
        config_path=str(path),
    )  # fmt: skip
