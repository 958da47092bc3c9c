from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from service.api.params import Dataset, Layers, Limit, Model, Offset, Status
from service.deps import SessionDep
from storage import queries
from storage.queries import TrialSort
from storage.schemas import Page, TrialSummary

router = APIRouter(tags=["trials"])

Experiment = Annotated[str | None, Query(max_length=64, description="NNI experiment id")]


@router.get("/trials", response_model=Page[TrialSummary])
def list_trials(
    session: SessionDep,
    experiment: Experiment = None,
    model: Model = None,
    dataset: Dataset = None,
    status: Status = None,
    layers: Layers = None,
    sort: TrialSort = "val_error",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TrialSummary]:
    return queries.list_trials(
        session, experiment=experiment, model=model, dataset=dataset, status=status,
        layers=layers, sort=sort, descending=order == "desc", limit=limit, offset=offset,
    )  # fmt: skip


@router.get(
    "/trials.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per trial"}},
)
def export_trials_csv(
    session: SessionDep,
    experiment: Experiment = None,
    model: Model = None,
    dataset: Dataset = None,
    status: Status = None,
    layers: Layers = None,
) -> StreamingResponse:
    header, rows = queries.iter_trials_csv_rows(
        session, experiment=experiment, model=model, dataset=dataset, status=status, layers=layers
    )
    # Rows are materialized by the query before the session closes; this only formats them.
    rows = list(rows)

    def lines() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(header)
        for i, row in enumerate(rows, 1):
            writer.writerow(row)
            if i % 1000 == 0:
                yield buf.getvalue()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue()

    # Header values must be latin-1 and quote-free: any other character of a user-given filter
    # made this a 500 (found by schemathesis), so the file name keeps only safe characters.
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", experiment or model or "all")
    name = f"trials-{stem}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
