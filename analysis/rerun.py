"""Experiments this installation runs again (confirmations, warm starts): built from the trial
contract, never copied from a stored record.

A stored experiment is untrusted (it may come from an imported file): its trial command, code
directory, tuner, assessor and training service are never run. A plan is built instead:
- the command is ``python -m trials.<entry>`` of one of this project's entries (through the warm
  launcher ``python -m trials.warm <entry>`` on the local training service), with flags made
  from the stored *configuration*, each value put through the entry's own parameter rules (the
  same ``merge`` and checks a trial runs, so a bad value is refused here, not run);
- the code directory is this installation's; the training service is the one this installation
  is configured with (``Rerun``), never one read from a record;
- tuners, assessors and advisors come from an allow-list: NNI's built-ins by name, this
  project's ``advisors.*`` by class, with scalar class arguments only.
A configuration that did not come from a trial's own report (a foreign experiment) cannot be
rebuilt that way; the user may name the command to run instead (``Rerun.command``), which the
plan then shows back.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.errors import InvalidValue
from trials import contract

REPO = Path(__file__).resolve().parents[1]

#: NNI's built-in algorithms, by the names an experiment config uses for them.
BUILTIN_TUNERS = frozenset({
    "TPE", "Random", "Anneal", "Evolution", "SMAC", "Batch", "GridSearch", "Metis", "GP", "PBT",
    "DNGO", "Hyperband", "BOHB",
})  # fmt: skip
BUILTIN_ASSESSORS = frozenset({"Medianstop", "Curvefitting"})
#: This project's NNI-side algorithms, by class name (imported from this installation's code).
OUR_CLASSES = frozenset({"advisors.hyperband.Hyperband"})
NNI_SPACE_TYPES = frozenset({
    "choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal",
    "lognormal", "qlognormal",
})  # fmt: skip
DURATION = re.compile(r"^\d{1,6}[smhd]$")
MAX_USER_COMMAND = 2000


class PlanRefused(InvalidValue):
    """What is stored cannot be rebuilt into an experiment this installation runs (a 422)."""


@dataclass(frozen=True)
class Rerun:
    """How this installation runs what it plans: its NNI training service and, for a foreign
    experiment, the command the user named."""

    training_service: dict[str, Any] = field(default_factory=lambda: {"platform": "local"})
    command: str | None = None


def is_ours(config_source: str | None) -> bool:
    return config_source == contract.CONFIG_FROM_REPORT


def checked_params(config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(entry, parameters)`` of a stored effective configuration: the entry must be one of
    ours, and every value passes that entry's parameter rules (coerced to its field's type)."""
    from trials.params import TrialError, merge, regularized_layers

    entry = config.get(contract.ENTRY)
    if entry not in contract.ENTRIES:
        raise PlanRefused(
            f"the stored configuration names entry {entry!r}, not one of this project's trials "
            f"({', '.join(contract.ENTRIES)}): it cannot be re-run as it is"
        )
    module = importlib.import_module(f"trials.{entry}")
    cls = getattr(module, f"{entry.upper()}Params")
    keys = {k: v for k, v in config.items() if k != contract.ENTRY}
    try:
        params = merge(cls, cls(), keys, "the stored configuration")
        if hasattr(module, "validate"):
            module.validate(params)
        regularized_layers(params, module.layer_indices(params))
    except TrialError as exc:
        raise PlanRefused(f"the stored configuration cannot be re-run: {exc}") from None
    return entry, {k: getattr(params, k) for k in keys}


def split_common(sets: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(what every set gives the same value: the command's flags, each set's own keys)."""
    first = sets[0]
    common = {k: v for k, v in first.items() if all(k in s and s[k] == v for s in sets[1:])}
    return common, [{k: v for k, v in s.items() if k not in common} for s in sets]


def _scalar_args(args: Any, what: str) -> dict[str, Any]:
    if args is None:
        return {}
    if not isinstance(args, Mapping) or not all(
        isinstance(v, str | int | float | bool) and not isinstance(v, dict) for v in args.values()
    ):
        raise PlanRefused(f"the stored {what}'s classArgs are not plain values: not re-run")
    return {str(k): v for k, v in args.items()}


def algorithm(spec: Any, what: str, builtins: Iterable[str]) -> dict[str, Any]:
    """A stored tuner, assessor or advisor, rebuilt from the allow-list (see the module)."""
    allowed = sorted(set(builtins) | OUR_CLASSES)
    if not isinstance(spec, Mapping):
        raise PlanRefused(f"the stored {what} is not an algorithm spec")
    name, class_name = spec.get("name"), spec.get("className")
    args = _scalar_args(spec.get("classArgs"), what)
    if class_name is None and name in builtins:
        out: dict[str, Any] = {"name": name}
    elif name is None and class_name in OUR_CLASSES:
        out = {"codeDirectory": str(REPO), "className": class_name}
    else:
        shown = class_name if class_name is not None else name
        raise PlanRefused(
            f"the stored {what} {str(shown)[:80]!r} is not one this installation runs; allowed: "
            f"{', '.join(allowed)}"
        )
    if args:
        out["classArgs"] = args
    return out


def search_space(space: Any, entry: str | None) -> dict[str, Any]:
    """A stored search space, each key a parameter of ``entry`` (when known) and each spec one
    of NNI's types over plain values."""
    if not isinstance(space, Mapping):
        return {}
    fields: set[str] | None = None
    if entry is not None:
        module = importlib.import_module(f"trials.{entry}")
        fields = {f.name for f in dataclasses.fields(getattr(module, f"{entry.upper()}Params"))}
    out: dict[str, Any] = {}
    for key, spec in space.items():
        if fields is not None and key not in fields:
            raise PlanRefused(f"search-space key {str(key)[:80]!r} is not a parameter of {entry}")
        if not isinstance(spec, Mapping) or spec.get("_type") not in NNI_SPACE_TYPES:
            raise PlanRefused(f"search-space key {str(key)[:80]!r} has no NNI spec")
        out[str(key)] = {"_type": spec["_type"], "_value": spec.get("_value")}
    return out


def experiment(
    name: str,
    space: dict[str, Any],
    command: str,
    rerun: Rerun,
    *,
    concurrency: int,
    max_trials: int,
    tuner: dict[str, Any] | None = None,
    advisor: dict[str, Any] | None = None,
    assessor: dict[str, Any] | None = None,
    duration: Any = None,
) -> dict[str, Any]:
    """The NNI experiment config this installation starts: its code, its training service."""
    config: dict[str, Any] = {
        "experimentName": name,
        "searchSpace": space,
        "trialCommand": command,
        "trialCodeDirectory": str(REPO),
        "trialConcurrency": concurrency,
        "maxTrialNumber": max_trials,
        "trainingService": dict(rerun.training_service),
    }
    if advisor is not None:
        config["advisor"] = advisor
    else:
        config["tuner"] = tuner or {"name": "Random"}
    if assessor is not None:
        config["assessor"] = assessor
    if isinstance(duration, str) and DURATION.match(duration):
        config["maxExperimentDuration"] = duration
    return config


def runs_warm(rerun: Rerun) -> bool:
    """Whether planned trials go through the warm launcher: on NNI's local training service only
    (a remote machine starts each trial cold)."""
    return rerun.training_service.get("platform") == "local"


def trial_command(entry: str, flags: Mapping[str, Any], rerun: Rerun) -> str:
    """This installation's command for ``entry`` with ``flags``, warm where it runs locally."""
    return contract.entry_command(entry, flags, warm=runs_warm(rerun))


def user_command(rerun: Rerun, what: str) -> str:
    """The command the user named for a foreign experiment, or why there is none."""
    if rerun.command is None:
        raise PlanRefused(
            f"{what} did not come from this project's trial reports (a foreign experiment): it "
            "is not re-run with its own stored command; name the command to run (command=...)"
        )
    if len(rerun.command) > MAX_USER_COMMAND or "\n" in rerun.command:
        raise PlanRefused(f"command: one line of at most {MAX_USER_COMMAND} characters")
    return rerun.command


_SHELL_SYNTAX = re.compile(r"[;&|$<>`()\\\n\r{}*?!#~]")
_PYTHON = re.compile(r"^(?:.*/)?python(?:\d+(?:\.\d+)?)?$")


def foreign_reason(stored: Mapping[str, Any] | None, command: str | None) -> str | None:
    """Why a stored search experiment is not one of this project's as it ran (None when it is):
    a trial command that is not a plain ``python -m trials.<entry> --flag value ...``, or an
    algorithm outside the allow-list. Its record is never run either way; this says whether the
    user must name the command to re-run it."""
    if not command or len(command) > contract.MAX_COMMAND_CHARS or _SHELL_SYNTAX.search(command):
        return "its stored trial command is not a plain `python -m trials.<entry>` command"
    argv = command.split()
    if len(argv) < 3 or not _PYTHON.match(argv[0]) or (
        contract.command_entry(argv[1:]) not in contract.ENTRIES
    ):
        return "its stored trial command does not run one of this project's trial entries"
    for what, builtins in (("tuner", BUILTIN_TUNERS), ("advisor", BUILTIN_TUNERS),
                           ("assessor", BUILTIN_ASSESSORS)):  # fmt: skip
        spec = (stored or {}).get(what)
        if spec is not None:
            try:
                algorithm(spec, what, builtins)
            except PlanRefused as exc:
                return str(exc).removeprefix("the stored ")
    return None
