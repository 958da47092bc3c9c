"""Pages: the same queries as the JSON API, rendered with Jinja2."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import urllib.parse
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, StringConstraints

from analysis.best import best_config, best_lambda_per_layer, layer_recommendation
from analysis.report import paper_report
from analysis.verdict import compare
from service.api.params import GroupDep
from service.cache import JsonBytes
from service.deps import CacheDep, DbDep, SessionDep, SettingsDep
from service.report import cell_text
from service.settings import Settings
from service.wording import interval, mean_std, p_value
from storage import queries
from storage.errors import StorageError
from storage.nni.registry import read_registry
from storage.schemas import ExperimentDetail, PaperReport
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
    if isinstance(value, BaseModel):
        # pydantic's encoder (~10x json's) writes NaN and ±inf as null.
        return _escape_for_script(value.model_dump_json())
    # allow_nan=False: a non-finite number that slipped past _finite_only is a bug to see, not
    # a broken page.
    text = json.dumps(_finite_only(value), separators=(",", ":"), allow_nan=False)
    return _escape_for_script(text)


def _escape_for_script(text: str) -> Markup:
    # Inside <script> the HTML parser decodes no entities, so escape only what could end the
    # element early; trial parameters are user data.
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


templates.env.filters["tojson_compact"] = _json_for_script
templates.env.filters["cell"] = cell_text
# The verdict's numbers worded as everywhere else (service/wording.py).
templates.env.filters["mean_std"] = lambda st: mean_std(st.test_error_mean, st.test_error_std)
templates.env.filters["interval"] = lambda d: interval(d.ci_low, d.ci_high)
templates.env.filters["p"] = p_value


def _lambdas(params: dict[str, Any]) -> list[tuple[int, Any]]:
    """(layer, λ) of the λ keys of a parameter or configuration dict (trials/contract.py)."""
    found = [(int(m.group(1)), v) for k, v in params.items() if (m := contract.LAMBDA_KEY.match(k))]
    return sorted(found)


def _without_lambdas(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items()
            if not contract.LAMBDA_KEY.match(k) and k != contract.LAYERS}  # fmt: skip


templates.env.filters["lambdas"] = _lambdas
templates.env.filters["without_lambdas"] = _without_lambdas


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
async def experiment_page(
    request: Request, db: DbDep, cache: CacheDep, settings: SettingsDep, nni_id: str
) -> HTMLResponse:
    def experiment() -> ExperimentDetail:
        with db.session_scope() as s:
            return queries.get_experiment(s, nni_id)

    exp = await asyncio.to_thread(experiment)  # a 404 names an unknown id before any work
    # The trial columns (MBs at 10,000 trials) are cached per data version: a reload or a
    # second reader pays only the template.
    # The same cache entry as GET /api/experiments/{id}/points, which the page polls.
    sel = queries.TrialSelection(experiments=(nni_id,))
    points = await cache.bytes(
        ("points", sel), JsonBytes(partial(queries.trial_points, sel=sel)), heavy=True, keep=True
    )
    ctx = {
        "exp": exp,
        "points_json": _escape_for_script(points.decode()),
        "budgets_stored": True,
        "sync_errors": _sync_errors(request, nni_id),
        "nni_ui": _nni_ui_url(request, settings, exp.nni_id, exp.status),
        # While the manager runs, the page fetches the trials again (NNI's own UI does too).
        "refresh_ms": int(settings.ui_refresh_seconds * 1000) if exp.status != "STOPPED" else 0,
    }
    return templates.TemplateResponse(request, "experiment.html", ctx)


def _sync_errors(request: Request, nni_id: str) -> list[str]:
    """What the last sync pass could not read of this experiment (its errors are
    "<id>: <why>")."""
    last = request.app.state.syncer.last
    prefix = f"{nni_id}: "
    return [e[len(prefix) :] for e in (last.errors if last else []) if e.startswith(prefix)]


def _nni_ui_url(request: Request, settings: Settings, nni_id: str, status: str) -> str | None:
    """NNI's own web UI while its manager runs (any status but STOPPED): the port is in NNI's
    registry, the host is the one this page was asked on (NNI serves beside the service)."""
    if status == "STOPPED":
        return None
    try:
        entries = read_registry(settings.nni_dir)
    except StorageError:
        return None
    entry = next((e for e in entries if e.nni_id == nni_id), None)
    if entry is None or entry.port is None:
        return None
    prefix = f"/{entry.prefix_url.strip('/')}" if entry.prefix_url else ""
    return f"http://{request.url.hostname}:{entry.port}{prefix}/"


Key = Annotated[str, StringConstraints(max_length=300)]


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    session: SessionDep,
    experiment: Annotated[list[Key], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    group: Annotated[list[Key], Query()] = [],  # noqa: B006
) -> HTMLResponse:
    """Experiments and (model, data set, budget) groups side by side."""
    series = queries.compare_series(session, experiment, group)
    ctx = {
        "series": series,
        "experiments": queries.list_experiments(session, limit=1000).items,
        "groups": queries.compare_groups(session),
        "chosen": set(experiment) | set(group),
    }
    return templates.TemplateResponse(request, "compare.html", ctx)


@router.get("/models/{model}/{dataset}", response_class=HTMLResponse)
def model_page(
    request: Request, session: SessionDep, settings: SettingsDep, group: GroupDep
) -> HTMLResponse:
    best = best_config(session, group)
    group = queries.Group(group.model, group.dataset, best.budget, group.include_partial)
    ctx: dict[str, Any] = {
        "model": group.model,
        "dataset": group.dataset,
        "best": best,
        "lambdas": best_lambda_per_layer(session, group),
        "rec": layer_recommendation(session, group),
        "cmp": compare(session, group),
        # Starting NNI from here needs the write token (service/deps.require_start_token).
        "start_needs_token": settings.api_token is None,
    }
    return templates.TemplateResponse(request, "model.html", ctx)


@router.get("/report", response_class=HTMLResponse)
async def report_page(request: Request, cache: CacheDep) -> HTMLResponse:
    # The same cached computation as GET /api/report.
    body = await cache.bytes(("report",), JsonBytes(paper_report), heavy=True, keep=True)
    report = PaperReport.model_validate_json(body)
    return templates.TemplateResponse(request, "report.html", {"report": report})
