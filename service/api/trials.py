from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import ExitStack

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from service.api.params import TrialFilterDep, TrialPageDep
from service.csv_cells import neutralise
from service.deps import DbDep, SessionDep
from storage import queries
from storage.schemas import Page, TrialSummary

router = APIRouter(tags=["trials"])


@router.get("/trials", response_model=Page[TrialSummary])
def list_trials(
    session: SessionDep,
    where: TrialFilterDep,
    page: TrialPageDep,
) -> Page[TrialSummary]:
    return page.of(session, where)


@router.get(
    "/trials.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per trial"}},
)
def export_trials_csv(db: DbDep, where: TrialFilterDep) -> StreamingResponse:
    # The session lives as long as the download: rows are read a batch at a time while the
    # response streams (a dependency's session would be closed before the body is sent).
    stack = ExitStack()
    session = stack.enter_context(db.session_scope(snapshot=True))
    try:
        header, rows = queries.iter_trials_csv_rows(session, where)  # NotFound: a 404 here
    except BaseException:
        stack.close()
        raise

    def lines() -> Iterator[str]:
        with stack:
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow([neutralise(h) for h in header])
            for i, row in enumerate(rows, 1):
                writer.writerow([neutralise(c) for c in row])
                if i % 1000 == 0:
                    yield buf.getvalue()
                    buf.seek(0)
                    buf.truncate()
            yield buf.getvalue()

    # Header values must be latin-1 and quote-free: any other character of a user-given filter
    # made this a 500 (found by schemathesis), so the file name keeps only safe characters.
    experiment = where.experiments[0] if where.experiments else None
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", experiment or where.model or "all")
    name = f"trials-{stem}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
