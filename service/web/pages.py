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

from service.deps import SessionDep
from storage import queries

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
def model_page(request: Request, session: SessionDep, model: str, dataset: str) -> HTMLResponse:
    best = queries.best_config(session, model, dataset)
    ctx: dict[str, Any] = {
        "model": model,
        "dataset": dataset,
        "best": best,
        "lambdas": queries.best_lambda_per_layer(session, model, dataset),
        "rec": queries.layer_recommendation(session, model, dataset),
        "cmp": queries.compare(session, model, dataset),
    }
    return templates.TemplateResponse(request, "model.html", ctx)
