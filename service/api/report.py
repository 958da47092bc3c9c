"""The paper-style report of every stored (model, data set, budget): JSON, Markdown or CSV."""

from __future__ import annotations

from fastapi import APIRouter, Response

from analysis.report import paper_report
from service import report as rendered
from service.deps import CacheDep
from storage.schemas import PaperReport

router = APIRouter(prefix="/report", tags=["report"])


# The report reads every stored group: cached per data version, computed once however many ask,
# in a heavy-answer worker process (service.cache), so it never holds the server's GIL.
@router.get("", response_model=PaperReport)
async def report(cache: CacheDep) -> Response:
    """Per model family: vanilla vs NSR, per layer subset and per regularizer, each cell the test
    error mean ± std over n (confirmation runs where they exist), the paper's figure beside."""
    return await cache.json(("report",), paper_report, heavy=True, keep=True)


@router.get("/markdown", response_class=Response)
async def report_markdown(cache: CacheDep) -> Response:
    body = await cache.bytes(
        ("report", "markdown"), rendered.report_markdown, heavy=True, keep=True
    )
    return Response(body, media_type="text/markdown")


@router.get("/csv", response_class=Response)
async def report_csv(cache: CacheDep) -> Response:
    body = await cache.bytes(("report", "csv"), rendered.report_csv, heavy=True, keep=True)
    return Response(
        body,
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="nsr-report.csv"'},
    )
