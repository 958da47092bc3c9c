"""The paper-style report of every stored (model, data set, budget): JSON, Markdown or CSV."""

from __future__ import annotations

from fastapi import APIRouter, Response

from analysis.report import paper_report
from service.deps import SessionDep
from service.report import to_csv, to_markdown
from storage.schemas import PaperReport

router = APIRouter(prefix="/report", tags=["report"])


@router.get("", response_model=PaperReport)
def report(session: SessionDep) -> PaperReport:
    """Per model family: vanilla vs NSR, per layer subset and per regularizer, each cell the test
    error mean ± std over n (confirmation runs where they exist), the paper's figure beside."""
    return paper_report(session)


@router.get("/markdown", response_class=Response)
def report_markdown(session: SessionDep) -> Response:
    return Response(to_markdown(paper_report(session)), media_type="text/markdown")


@router.get("/csv", response_class=Response)
def report_csv(session: SessionDep) -> Response:
    return Response(
        to_csv(paper_report(session)),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="nsr-report.csv"'},
    )
