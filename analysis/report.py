"""The paper's tables from stored results: per (model, data set, budget), vanilla vs NSR (Tables
1-3), NSR per layer subset (Tables 6-7) and per regularizer family (Table 4).

Each cell is the test error mean ± std over n trials of one configuration (the best of its row by
mean validation error): from confirmation runs where the group has them (``confirmed``), else from
the search's own trials, which the renderers mark as unconfirmed. The paper's figure sits beside a
cell only where the paper used the same data set.
"""

from __future__ import annotations

from dataclasses import replace

from analysis import paper_figures
from analysis.verdict import versus
from storage.db import Session
from storage.queries import (
    Group,
    TrialSet,
    confirmation_trials,
    group_stats,
    has_trials,
    list_families,
    list_layer_sets,
    list_result_groups,
    ranked_configs,
    search_trials,
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
    diff = versus(vanilla, stats) if stats is not None and confirmed else None
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
        p_welch=diff.p_welch if diff else None,
        ci_low=diff.ci_low if diff else None,
        ci_high=diff.ci_high if diff else None,
    )


def _best(session: Session, trials: TrialSet) -> GroupStats | None:
    """The stats of the best configuration (by mean validation error) among ``trials``."""
    keys = ranked_configs(session, trials)
    return group_stats(session, replace(trials, config_key=keys[0])) if keys else None


def report_group(session: Session, group: Group) -> ReportGroup:
    assert group.budget is not None
    confirm = confirmation_trials(group, group.budget)
    confirmed = has_trials(session, confirm)
    trials = confirm if confirmed else search_trials(group, group.budget)
    key = (group.model, group.dataset)
    main = paper_figures.TABLE_MAIN.get(key, {})
    by_layer_paper = paper_figures.TABLE_LAYERS.get(key, {})
    by_reg_paper = paper_figures.TABLE_REGULARIZERS.get(key, {})
    vanilla = _best(session, replace(trials, family="vanilla"))
    nsr = _best(session, replace(trials, family="nsr"))
    table1 = [
        _cell("vanilla", vanilla, confirmed, main.get("vanilla")),
        _cell("NSR", nsr, confirmed, main.get("nsr"), vanilla),
    ]
    by_layers = [_cell(f"{group.model} (no NSR)", vanilla, confirmed, by_layer_paper.get("none"))]
    for layers in list_layer_sets(session, replace(trials, family="nsr")):
        stats = _best(session, replace(trials, family="nsr", layers=layers))
        by_layers.append(
            _cell(f"{group.model} NSR on {layers}", stats, confirmed, by_layer_paper.get(layers),
                  vanilla)
        )  # fmt: skip
    families = [f for f in list_families(session, trials) if f not in ("vanilla", "unknown")]
    by_reg = [_cell("vanilla", vanilla, confirmed, by_reg_paper.get("vanilla"))]
    for family in families:
        stats = _best(session, replace(trials, family=family))
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
    groups = sorted(
        list_result_groups(session),
        key=lambda g: (model_family(g.model), g.model, g.dataset, g.budget or ""),
    )
    return PaperReport(groups=[report_group(session, g) for g in groups])
