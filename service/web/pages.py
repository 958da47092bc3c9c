"""Pages: the same queries as the JSON API, rendered with Jinja2."""

from __future__ import annotations

import datetime as dt
import json
import math
import urllib.parse
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


def _finite_only(value: Any) -> Any:
    """``value`` with NaN and ±inf as null: JSON has no such numbers, and one of them made
    JSON.parse (and so every plot of the page) fail."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_only(v) for v in value]
    return value


def _json_for_script(value: Any) -> Markup:
    # Inside <script> the HTML parser decodes no entities, so escape only what could end the
    # element early; trial parameters are user data. allow_nan=False: a non-finite number that
    # slipped past _finite_only is a bug to see, not a broken page.
    text = json.dumps(_finite_only(value), separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


templates.env.filters["tojson_compact"] = _json_for_script


def _path_segment(value: Any) -> str:
    # Ids and names come from NNI's files: a '/', '?', '#' or '%' in one must not change the link.
    return urllib.parse.quote(str(value), safe="")


templates.env.filters["seg"] = _path_segment

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def experiments_page(request: Request, session: SessionDep) -> HTMLResponse:
    page = queries.list_experiments(session, limit=1000)
    models = queries.list_models(session)
    errors = queries.list_sync_errors(session)
    return templates.TemplateResponse(
        request, "experiments.html", {"experiments": page.items, "total": page.total,
                                      "models": models, "sync_errors": errors}
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
