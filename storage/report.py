"""The paper's tables from stored results: per (model, data set, budget), vanilla vs NSR (Tables
1-3), NSR per layer subset (Tables 6-7) and per regularizer family (Table 4).

Each cell is the test error mean ± std over n trials of one configuration (the best of its row by
mean validation error): from confirmation runs where the group has them (``confirmed``), else from
the search's own trials, which the renderers mark as unconfirmed. The paper's figure sits beside a
cell only where the paper used the same data set.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import paper_figures
from storage.models import Trial
from storage.queries import (
    Group,
    _confirmation_trials,
    _group_stats,
    _ranked_configs,
    _search_trials,
    _versus,
)
from storage.schemas import GroupStats, PaperReport, ReportCell, ReportGroup


def model_family(model: str) -> str:
    if model.startswith("mlp"):
        return "mlp"
    if model.startswith(("gcn", "sage")):
        return "gnn"
    return "cnn"


def _cell(
    label: str, stats: GroupStats | None, confirmed: bool, paper: str | None,
    vanilla: GroupStats | None = None,
) -> ReportCell:  # fmt: skip
    versus = _versus(vanilla, stats) if stats is not None and confirmed else None
    return ReportCell(
        label=label,
        config_key=stats.config_key if stats else None,
        layers=stats.layers if stats else None,
        family=stats.family if stats else None,
        mean=stats.test_error_mean if stats else None,
        std=stats.test_error_std if stats else None,
        n=len(stats.test_errors) if stats else 0,
        confirmed=confirmed,
        paper=paper,
        p_welch=versus.p_welch if versus else None,
        ci_low=versus.ci_low if versus else None,
        ci_high=versus.ci_high if versus else None,
    )


def _best(session: Session, conds: list[Any], *extra: Any) -> GroupStats | None:
    keys = _ranked_configs(session, [*conds, *extra], None)
    return _group_stats(session, [*conds, Trial.config_key == keys[0]]) if keys else None


def report_group(session: Session, group: Group) -> ReportGroup:
    assert group.budget is not None
    confirm = _confirmation_trials(group, group.budget)
    confirmed = session.scalar(select(Trial.id).where(*confirm).limit(1)) is not None
    conds = confirm if confirmed else _search_trials(group, group.budget)
    key = (group.model, group.dataset)
    main = paper_figures.TABLE_MAIN.get(key, {})
    by_layer_paper = paper_figures.TABLE_LAYERS.get(key, {})
    by_reg_paper = paper_figures.TABLE_REGULARIZERS.get(key, {})
    vanilla = _best(session, conds, Trial.family == "vanilla")
    nsr = _best(session, conds, Trial.family == "nsr")
    table1 = [
        _cell("vanilla", vanilla, confirmed, main.get("vanilla")),
        _cell("NSR", nsr, confirmed, main.get("nsr"), vanilla),
    ]
    layer_sets = sorted(
        set(session.scalars(select(Trial.layers).where(*conds, Trial.family == "nsr")).all()),
        key=lambda s: (len(s.split(",")), s),
    )
    by_layers = [_cell(f"{group.model} (no NSR)", vanilla, confirmed, by_layer_paper.get("none"))]
    for layers in layer_sets:
        stats = _best(session, conds, Trial.family == "nsr", Trial.layers == layers)
        by_layers.append(
            _cell(f"{group.model} NSR on {layers}", stats, confirmed, by_layer_paper.get(layers),
                  vanilla)
        )  # fmt: skip
    families = sorted(
        set(session.scalars(select(Trial.family).where(*conds)).all()) - {"vanilla", "unknown"}
    )
    by_reg = [_cell("vanilla", vanilla, confirmed, by_reg_paper.get("vanilla"))]
    for family in families:
        stats = _best(session, conds, Trial.family == family)
        by_reg.append(_cell(family, stats, confirmed, by_reg_paper.get(family), vanilla))
    return ReportGroup(
        model=group.model,
        dataset=group.dataset,
        budget=group.budget,
        family_of_models=model_family(group.model),
        table1=table1,
        by_layers=by_layers,
        by_regularizer=by_reg,
    )


def paper_report(session: Session) -> PaperReport:
    """Every (model, data set, budget) with full-budget results, grouped by model family."""
    rows = session.execute(
        select(Trial.model, Trial.dataset, Trial.budget)
        .where(
            Trial.model.is_not(None),
            Trial.dataset.is_not(None),
            Trial.val_error.is_not(None),
            Trial.partial.is_(False),
        )
        .distinct()
    ).all()
    groups = [
        report_group(session, Group(m, d, b or "unknown"))
        for m, d, b in sorted(rows, key=lambda r: (model_family(r[0]), r[0], r[1], r[2] or ""))
    ]
    return PaperReport(groups=groups)
