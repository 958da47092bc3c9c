"""Pages: the same queries as the JSON API, rendered with Jinja2."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from service.api.params import GroupDep
from service.deps import SessionDep
from service.report import cell_text
from storage import queries
from storage.report import paper_report
from trials import contract

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")


def _fmt_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt_num(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        small_or_big = value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4)
        return f"{value:.{digits}g}" if small_or_big else f"{value:.{digits}f}"
    return str(value)


templates.env.filters["time"] = _fmt_time
templates.env.filters["num"] = _fmt_num


def _json_for_script(value: Any) -> Markup:
    # Inside <script> the HTML parser decodes no entities, so escape only what could end the
    # element early; trial parameters are user data.
    text = json.dumps(value, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


templates.env.filters["tojson_compact"] = _json_for_script
templates.env.filters["cell"] = cell_text


def _lambdas(params: dict[str, Any]) -> list[tuple[int, Any]]:
    """(layer, λ) of the λ keys of a parameter or configuration dict (trials/contract.py)."""
    found = [(int(m.group(1)), v) for k, v in params.items() if (m := contract.LAMBDA_KEY.match(k))]
    return sorted(found)


def _without_lambdas(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items()
            if not contract.LAMBDA_KEY.match(k) and k != contract.LAYERS}  # fmt: skip


templates.env.filters["lambdas"] = _lambdas
templates.env.filters["without_lambdas"] = _without_lambdas

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def experiments_page(request: Request, session: SessionDep) -> HTMLResponse:
    page = queries.list_experiments(session, limit=1000)
    models = queries.list_models(session)
    return templates.TemplateResponse(
        request, "experiments.html", {"experiments": page.items, "total": page.total,
                                      "models": models}
    )  # fmt: skip


@router.get("/experiments/{nni_id}", response_class=HTMLResponse)
def experiment_page(request: Request, session: SessionDep, nni_id: str) -> HTMLResponse:
    exp = queries.get_experiment(session, nni_id)
    trials = queries.list_trials(session, queries.TrialFilter(experiment=nni_id), limit=1000)
    plots = queries.experiment_plot_data(session, nni_id)
    return templates.TemplateResponse(
        request, "experiment.html", {"exp": exp, "trials": trials, "plots": plots}
    )


@router.get("/models/{model}/{dataset}", response_class=HTMLResponse)
def model_page(request: Request, session: SessionDep, group: GroupDep) -> HTMLResponse:
    best = queries.best_config(session, group)
    group = queries.Group(group.model, group.dataset, best.budget, group.include_partial)
    ctx: dict[str, Any] = {
        "model": group.model,
        "dataset": group.dataset,
        "best": best,
        "lambdas": queries.best_lambda_per_layer(session, group),
        "rec": queries.layer_recommendation(session, group),
        "cmp": queries.compare(session, group),
    }
    return templates.TemplateResponse(request, "model.html", ctx)


@router.get("/report", response_class=HTMLResponse)
def report_page(request: Request, session: SessionDep) -> HTMLResponse:
    report = paper_report(session)
    return templates.TemplateResponse(request, "report.html", {"report": report})
