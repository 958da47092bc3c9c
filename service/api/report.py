"""The paper-style report of every stored (model, data set, budget): JSON, Markdown or CSV."""

from __future__ import annotations

from fastapi import APIRouter, Response

from analysis.report import paper_report
from service.deps import CacheDep
from service.report import to_csv, to_markdown
from storage.schemas import PaperReport

router = APIRouter(prefix="/report", tags=["report"])


# The report reads every stored group: cached per data version, and computed once however many
# ask (one worker of the answer pool; the importance jobs have their own and cannot queue it).
@router.get("", response_model=PaperReport)
async def report(cache: CacheDep) -> Response:
    """Per model family: vanilla vs NSR, per layer subset and per regularizer, each cell the test
    error mean ± std over n (confirmation runs where they exist), the paper's figure beside."""
    return await cache.json(("report",), paper_report)


@router.get("/markdown", response_class=Response)
async def report_markdown(cache: CacheDep) -> Response:
    body = await cache.bytes(
        ("report", "markdown"), lambda s: to_markdown(paper_report(s)).encode()
    )
    return Response(body, media_type="text/markdown")


@router.get("/csv", response_class=Response)
async def report_csv(cache: CacheDep) -> Response:
    body = await cache.bytes(
        ("report", "csv"), lambda s: to_csv(paper_report(s)).encode()
    )
    return Response(
        body,
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="nsr-report.csv"'},
    )
