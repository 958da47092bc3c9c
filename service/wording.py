"""How answers are worded, once: a mean with its spread, and a gain over vanilla with its
interval and p-value. The quickstart's lines, the Markdown report and the pages all use these,
so a number reads the same wherever it is shown."""

from __future__ import annotations


def mean_std(mean: float | None, std: float | None, digits: int = 2) -> str:
    """``"2.23 ± 0.48"``; ``"n/a"`` without a mean; no ``±`` part without a spread."""
    if mean is None:
        return "n/a"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def interval(low: float | None, high: float | None) -> str:
    """``"[+1.39, +2.41]"`` (signed: a gain's sign is the point), ``""`` without one."""
    if low is None or high is None:
        return ""
    return f"[{low:+.2f}, {high:+.2f}]"


def p_value(p: float | None) -> str:
    return "" if p is None else f"{p:.3g}"


def gain(
    difference: float | None,
    ci_low: float | None = None,
    ci_high: float | None = None,
    p_welch: float | None = None,
    wins: int | None = None,
    seeds: int | None = None,
) -> str:
    """``"gain +1.86 points, 95 % CI [+1.39, +2.41], Welch p=0.008, better on 3 of 3 seeds"``:
    vanilla's test error minus the configuration's, so a positive gain is better."""
    if difference is None:
        return ""
    parts = [f"gain {difference:+.2f} points"]
    if ci_low is not None and ci_high is not None:
        parts.append(f"95 % CI {interval(ci_low, ci_high)}")
    if p_welch is not None:
        parts.append(f"Welch p={p_value(p_welch)}")
    if seeds:
        parts.append(f"better on {wins} of {seeds} seeds")
    return ", ".join(parts)
