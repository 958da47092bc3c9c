"""The paper-style report rendered as Markdown or CSV (the data: ``analysis.report``)."""

from __future__ import annotations

import csv
import io

from sqlalchemy.orm import Session

from analysis.report import paper_report
from service.csv_cells import neutralise
from service.wording import interval, mean_std, p_value
from storage.schemas import PaperReport, ReportCell, ReportGroup

FAMILY_TITLES = {"mlp": "MLPs (paper Tables 1, 4-6)", "cnn": "CNNs (Table 2)",
                 "gnn": "GNNs (Tables 3, 4, 7)"}  # fmt: skip


def cell_text(c: ReportCell) -> str:
    if c.mean is None:
        return "—"
    mark = "" if c.confirmed else " †"
    return f"{mean_std(c.mean, c.std)} (n={c.n}){mark}"


def stats_text(c: ReportCell) -> str:
    if c.p_welch is None and c.ci_low is None:
        return ""
    return f"{interval(c.ci_low, c.ci_high) or '—'}, p={p_value(c.p_welch) or '—'}"


def _table(title: str, cells: list[ReportCell]) -> list[str]:
    lines = [f"**{title}**", "", "| row | test error % (ours) | gain CI 95 %, Welch p | paper |",
             "|---|---|---|---|"]  # fmt: skip
    for c in cells:
        lines.append(f"| {c.label} | {cell_text(c)} | {stats_text(c)} | {c.paper or ''} |")
    return [*lines, ""]


def _group_md(g: ReportGroup) -> list[str]:
    lines = [f"### {g.model} on {g.dataset} — budget `{g.budget}`", ""]
    lines += _table("Vanilla vs NSR", g.table1)
    if len(g.by_layers) > 2:
        lines += _table("NSR per layer subset", g.by_layers)
    if len(g.by_regularizer) > 2:
        lines += _table("Per regularizer family", g.by_regularizer)
    return lines


def to_markdown(report: PaperReport) -> str:
    lines = ["# nsr-search report", "",
             "Test error in %, mean ± sample std over n trials of the best configuration of each "
             "row (by validation error). † = search trials only (unconfirmed: the best of a "
             "search is biased low); otherwise confirmation runs over fresh seeds. The gain CI is "
             "a 95 % bootstrap interval of vanilla − row; p is Welch's t-test. Paper figures "
             "appear only where the paper used the same data set.", ""]  # fmt: skip
    if not report.groups:
        lines.append("No full-budget results stored yet.")
    for family in ("mlp", "cnn", "gnn"):
        groups = [g for g in report.groups if g.family_of_models == family]
        if groups:
            lines += [f"## {FAMILY_TITLES[family]}", ""]
            for g in groups:
                lines += _group_md(g)
    return "\n".join(lines).rstrip() + "\n"


CSV_HEADER = ["model", "dataset", "budget", "table", "row", "layers", "family", "mean", "std", "n",
              "confirmed", "ci_low", "ci_high", "p_welch", "paper"]  # fmt: skip


def to_csv(report: PaperReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)  # model and data set names come from stored, untrusted records
    for g in report.groups:
        for table, cells in (("main", g.table1), ("layers", g.by_layers),
                             ("regularizers", g.by_regularizer)):  # fmt: skip
            for c in cells:
                row = [
                    g.model,
                    g.dataset,
                    g.budget,
                    table,
                    c.label,
                    c.layers,
                    c.family,
                    c.mean,
                    c.std,
                    c.n,
                    c.confirmed,
                    c.ci_low,
                    c.ci_high,
                    c.p_welch,
                    c.paper,
                ]
                writer.writerow([neutralise(cell) for cell in row])
    return out.getvalue()


def report_markdown(session: Session) -> bytes:
    """The whole report as Markdown bytes (module level: a heavy answer computed in a worker
    process, service.cache)."""
    return to_markdown(paper_report(session)).encode()


def report_csv(session: Session) -> bytes:
    return to_csv(paper_report(session)).encode()
