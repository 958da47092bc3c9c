"""Hyperparameter importance of stored trials, computed by ``optuna.importance`` on an
in-memory study built from them (nothing is written to the database).

What a trial contributes is what took effect in it: NSR's λ of a layer counts only in trials
that regularized that layer, so each λ is a *conditional* parameter. Two kinds of groups:

* ``all trials``: the layer subset, the regularizer, the seed and the budget as categorical
  parameters, plus each λ where it took effect. PED-ANOVA scores conditional parameters (it
  partitions trials by whether a parameter is present); fANOVA keeps only the parameters every
  trial has, so there the λ drop out.
* one group per regularized layer subset (and baseline regularizer): only the trials of that
  subset, so every λ in it took effect, scored with the seed and any other searched parameter.

Only parameters that vary in a group are scored; λ are log-scaled over the range observed.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Literal

import optuna

from storage.db import Session
from storage.errors import InvalidValue
from storage.queries import TrialSelection, list_scored_trials
from storage.schemas import Importance, ImportanceGroup
from trials import contract

Method = Literal["ped-anova", "fanova"]
METHODS: tuple[str, ...] = ("ped-anova", "fanova")
#: fANOVA fits a random forest per group: ~80 s on 10,000 trials (2 cores). Beyond this many
#: trials it is refused with a message rather than left to time out.
MAX_FANOVA_TRIALS = 2000
#: Below this many trials a group's importances are noise (PED-ANOVA compares the best 10 % with
#: the rest: 20 trials give it 2).
MIN_TRIALS = 20


class StoredTrial:
    """What the importance needs of one trial: its effective parameters and its error."""

    __slots__ = ("layers", "family", "params", "value")

    def __init__(self, layers: str, family: str, params: dict[str, Any], value: float) -> None:
        self.layers = layers
        self.family = family
        self.params = params
        self.value = value


def load_trials(session: Session, sel: TrialSelection) -> list[StoredTrial]:
    """The selected trials that have a validation error, with the parameters that took effect:
    ``layers``, ``regularizer`` (the family), ``seed``, ``budget``, ``lambda_<k>`` of the
    regularized layers, a baseline's strength key, and any other searched parameter."""
    out = []
    for t in list_scored_trials(session, sel):
        found = t.strengths
        p: dict[str, Any] = {"layers": t.layers, "regularizer": t.family}
        if t.seed is not None:
            p["seed"] = t.seed
        if t.budget is not None:
            p["budget"] = t.budget
        for k, lam in found.lambdas.items():
            p[contract.lambda_key(k)] = lam
        if found.strength is not None:
            p[contract.STRENGTH_KEYS[found.family]] = found.strength
        for k, v in found.other.items():
            if isinstance(v, bool) or v is None:
                p[k] = str(v)
            elif isinstance(v, int | float | str):
                p[k] = v
        out.append(StoredTrial(t.layers, t.family, p, t.val_error))
    return out


def _distributions(trials: list[StoredTrial], scored: set[str] | None) -> dict[str, Any]:
    """One optuna distribution per parameter that varies: numbers (λ, strengths) as floats,
    log-scaled when all positive; everything else (and seed, layers, ...) categorical."""
    values: dict[str, list[Any]] = {}
    for t in trials:
        for k, v in t.params.items():
            if scored is None or k in scored:
                values.setdefault(k, []).append(v)
    dists: dict[str, Any] = {}
    for k, vs in values.items():
        distinct = set(vs)
        if len(distinct) < 2:
            continue
        numeric = all(isinstance(v, float) for v in vs)
        if numeric and k not in CATEGORICAL:
            lo, hi = min(vs), max(vs)
            dists[k] = optuna.distributions.FloatDistribution(lo, hi, log=lo > 0)
        else:
            dists[k] = optuna.distributions.CategoricalDistribution(sorted(distinct, key=str))
    return dists


#: Parameters that are choices even when they are numbers.
CATEGORICAL = frozenset({"layers", "regularizer", "seed", "budget"})


def build_study(
    trials: list[StoredTrial], scored: set[str] | None = None
) -> tuple[optuna.Study, list[str]]:
    """An in-memory minimizing optuna study holding ``trials``: each trial carries the varying
    parameters it has (a λ only where it took effect)."""
    dists = _distributions(trials, scored)
    study = optuna.create_study(direction="minimize")
    frozen = []
    for t in trials:
        params = {k: v for k, v in t.params.items() if k in dists}
        frozen.append(
            optuna.trial.create_trial(
                params=params, distributions={k: dists[k] for k in params}, value=t.value
            )
        )
    study.add_trials(frozen)
    return study, list(dists)


def evaluator(method: Method) -> optuna.importance.BaseImportanceEvaluator:
    if method == "fanova":
        # Seeded: the same trials give the same numbers on every request.
        return optuna.importance.FanovaImportanceEvaluator(seed=0)
    return optuna.importance.PedAnovaImportanceEvaluator()


def score(
    trials: list[StoredTrial], method: Method, scored: set[str] | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """``optuna.importance.get_param_importances`` on the study of ``trials``: (normalized,
    raw). Evaluated once; normalized as get_param_importances does (each / sum, equal shares
    when all are 0)."""
    study, params = build_study(trials, scored)
    if not params:
        return {}, {}
    with warnings.catch_warnings():
        # PED-ANOVA warns on small studies and optuna on experimental features: the group's
        # n_trials already says how much to trust the numbers.
        warnings.simplefilter("ignore")
        raw = optuna.importance.get_param_importances(
            study, evaluator=evaluator(method), normalize=False
        )
    total = sum(raw.values())
    share = {k: (v / total if total else 1.0 / len(raw)) for k, v in raw.items()}
    return {k: float(v) for k, v in share.items()}, {k: float(v) for k, v in raw.items()}


def _group(scope: str, family: str | None, layers: str | None, trials: list[StoredTrial],
           method: Method, scored: set[str] | None) -> ImportanceGroup:  # fmt: skip
    n = len(trials)
    if n < MIN_TRIALS:
        return ImportanceGroup(
            scope=scope, family=family, layers=layers, n_trials=n, importances={},
            note=f"{n} trials: importance needs at least {MIN_TRIALS}",
        )  # fmt: skip
    imp, raw = score(trials, method, scored)
    note = None if imp else "no parameter varies in these trials"
    return ImportanceGroup(
        scope=scope, family=family, layers=layers, n_trials=n, importances=imp, raw=raw,
        note=note,
    )  # fmt: skip


def _subsets(trials: Iterable[StoredTrial]) -> dict[tuple[str, str], list[StoredTrial]]:
    groups: dict[tuple[str, str], list[StoredTrial]] = {}
    for t in trials:
        if t.family in ("vanilla", "unknown"):
            continue
        groups.setdefault((t.family, t.layers), []).append(t)
    return groups


def importance(session: Session, sel: TrialSelection, method: Method = "ped-anova") -> Importance:
    """Importance over the selected trials: all of them, then each regularized layer subset."""
    if method not in METHODS:
        raise InvalidValue(f"method={method!r} is not allowed: one of {', '.join(METHODS)}")
    optuna_logger = logging.getLogger("optuna")
    optuna_logger.setLevel(logging.WARNING)  # create_study logs one INFO line per call
    trials = load_trials(session, sel)
    if method == "fanova" and len(trials) > MAX_FANOVA_TRIALS:
        raise InvalidValue(
            f"method=fanova on {len(trials)} trials takes minutes: it allows at most "
            f"{MAX_FANOVA_TRIALS}; filter the trials or use method=ped-anova"
        )
    groups = [_group("all trials", None, None, trials, method, None)]
    for (family, layers), members in sorted(_subsets(trials).items()):
        # Within one subset the subset and the regularizer are constant: score what varies.
        scored = {k for t in members for k in t.params} - {"layers", "regularizer"}
        scope = f"layers={layers}" if family == "nsr" else f"regularizer={family} layers={layers}"
        groups.append(_group(scope, family, layers, members, method, scored))
    return Importance(method=method, n_trials=len(trials), groups=groups)


def with_experiment(sel: TrialSelection, nni_id: str) -> TrialSelection:
    return replace(sel, experiments=(nni_id,))
