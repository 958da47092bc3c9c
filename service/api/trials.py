from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from service.api.params import Limit, Offset, SortOrder, TrialFilterDep
from service.deps import SessionDep
from storage import queries
from storage.queries import TrialSort
from storage.schemas import Page, TrialSummary

router = APIRouter(tags=["trials"])


@router.get("/trials", response_model=Page[TrialSummary])
def list_trials(
    session: SessionDep,
    where: TrialFilterDep,
    sort: TrialSort = "val_error",
    order: SortOrder = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[TrialSummary]:
    return queries.list_trials(
        session, where, sort=sort, descending=order == "desc", limit=limit, offset=offset
    )


@router.get(
    "/trials.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per trial"}},
)
def export_trials_csv(session: SessionDep, where: TrialFilterDep) -> StreamingResponse:
    header, rows = queries.iter_trials_csv_rows(session, where)
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
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", where.experiment or where.model or "all")
    name = f"trials-{stem}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
