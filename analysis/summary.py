"""The verdict in one sentence: what to use, by how much, how sure, and how many seeds would be
enough, for the model page, ``compare``'s ``summary`` and the quickstart's last line.

Errors are test errors in %, a gain is in percentage points, positive when NSR is better; the
sentence says so once. A gain counts as shown when its 95 % interval excludes zero *and* its p
(adjusted for the looks of an extended confirmation) is below 0.05: with three seeds a percentile
bootstrap interval is too narrow to stand alone. The sentence is about the NSR configuration with
the lowest validation error, unless it is not shown better and another NSR configuration is."""

from __future__ import annotations

from analysis.statistics import ALPHA
from storage.schemas import Comparison, Difference, GroupStats
from trials import contract


def _p_of(d: Difference) -> float | None:
    return d.p_adjusted if d.looks > 1 else d.p_welch


def shown_better(d: Difference | None) -> bool:
    """Whether ``d`` shows the configuration better than its baseline (see the module's rule)."""
    if d is None or d.ci_low is None or d.ci_low <= 0:
        return False
    p = _p_of(d)
    return p is not None and p < ALPHA


def _shown_worse(d: Difference) -> bool:
    p = _p_of(d)
    return d.ci_high is not None and d.ci_high < 0 and p is not None and p < ALPHA


def _config(stats: GroupStats) -> str:
    """"layer 4 with λ = 1.5" from a configuration's parameters."""
    layers = [int(x) for x in contract.parse_layers(stats.layers)] if stats.layers else []
    lams = [
        f"λ{k} = {float(stats.parameters[contract.lambda_key(k)]):.3g}"
        for k in layers
        if isinstance(stats.parameters.get(contract.lambda_key(k)), int | float)
    ]
    where = ("layer " if len(layers) == 1 else "layers ") + ", ".join(map(str, layers))
    if len(lams) == 1:
        lams = [lams[0].replace(f"λ{layers[0]}", "λ")]
    return where + (f" with {', '.join(lams)}" if lams else "")


def _mean_sd(stats: GroupStats) -> str:
    sd = f" ± {stats.test_error_std:.2f}" if stats.test_error_std is not None else ""
    return f"{stats.test_error_mean:.2f}{sd} %"


def _p(d: Difference) -> str:
    if d.p_welch is None:
        return "no p-value (fewer than 2 seeds a side)"
    if d.looks > 1:
        return f"p = {d.p_adjusted:.2g} (adjusted for {d.looks} looks)"
    return f"p = {d.p_welch:.2g}"


def _power(d: Difference) -> str:
    n = min(d.n_baseline, d.n_treated)
    if d.underpowered:
        return f" — underpowered ({n} seeds; {d.seeds_needed} per arm would detect this gain)"
    if d.min_gain is not None and d.seeds_needed_min_gain is not None:
        return f"; {d.seeds_needed_min_gain} seeds per arm would detect a {d.min_gain:g}-point gain"
    return ""


def verdict_sentence(c: Comparison) -> tuple[str, str | None]:
    """The sentence, and the configuration it is about (None: no NSR configuration)."""
    sentence, subject = _sentence(c)
    return sentence, subject.config_key if subject is not None else None


def _sentence(c: Comparison) -> tuple[str, GroupStats | None]:
    tail = "" if c.confirmed else " (unconfirmed: search trials only, confirm before trusting it)"
    if c.nsr is None:
        return f"No NSR trial of {c.model}/{c.dataset} [{c.budget}] to judge yet.", None
    if c.vanilla is None:
        return (f"Best NSR: {_config(c.nsr)}; no vanilla trial of {c.model}/{c.dataset} "
                f"[{c.budget}] to compare it with: add vanilla to the search."), c.nsr  # fmt: skip
    nsr, d = c.nsr, c.test_error_difference
    if not shown_better(d):  # another NSR configuration may be
        for v in c.configurations:
            if v.stats.family == "nsr" and shown_better(v.versus_vanilla):
                nsr, d = v.stats, v.versus_vanilla
                break
    if d is None or d.difference is None or nsr.test_error_mean is None:
        return (f"Best NSR: {_config(nsr)}, validation error {nsr.val_error_mean:.2f} % "
                f"vs {c.vanilla.val_error_mean:.2f} % vanilla; no test errors to compare"
                f"{tail}."), nsr  # fmt: skip
    ci = f"[{d.ci_low:+.2f}, {d.ci_high:+.2f}]" if d.ci_low is not None else "[no interval]"
    seeds = (f", better on {d.paired_wins} of {d.paired_seeds} shared seeds"
             if d.paired_seeds else "")  # fmt: skip
    numbers = (f"test error {_mean_sd(nsr)} vs {_mean_sd(c.vanilla)} vanilla, "
               f"{abs(d.difference):.2f} points {'better' if d.difference > 0 else 'worse'} "
               f"(gain {ci}), {_p(d)}{seeds}")  # fmt: skip
    if shown_better(d):
        return f"Use NSR on {_config(nsr)}: {numbers}{_power(d)}{tail}.", nsr
    if _shown_worse(d):
        return f"Vanilla beats the best NSR ({_config(nsr)}): {numbers}{tail}.", nsr
    needed = d.seeds_needed_min_gain if d.min_gain is not None else d.seeds_needed
    gain = d.min_gain if d.min_gain is not None else abs(d.difference)
    more = (f"; about {needed} seeds per arm would resolve a {gain:.2g}-point gain"
            if needed is not None else "")  # fmt: skip
    return (f"No NSR configuration is better than vanilla with confidence (best: "
            f"{_config(nsr)}, {numbers}){more}{tail}."), nsr  # fmt: skip
