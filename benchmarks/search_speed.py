"""The same MLP-4 search run plain and with early stopping (Hyperband), over tuner seeds.

    .venv/bin/python benchmarks/search_speed.py            # ~50 min on 2 cores
    .venv/bin/python benchmarks/search_speed.py --arms plain,hyperband,medianstop

One search samples N configurations of mlp4.yml's space (layers, λ per layer) for MLP-4 on
Fashion-MNIST with a full budget of R epochs. Arms, each a real NNI experiment per tuner seed:

- ``plain``: NNI's Random tuner (seeded); every one of the N configurations trains R epochs.
- ``hyperband``: successive halving over the same number of configurations: Hyperband's first
  (most aggressive) bracket, from ``advisors.hyperband.Hyperband`` (NNI's algorithm, seeded and
  runnable on NNI 3.0), ``exec_mode: serial``. N = eta^s configurations train 1 epoch, the best
  1/eta of them train eta times longer (a fresh trial each: NNI's Hyperband does not resume), up
  to one configuration on R epochs. With R = 27 and eta = 3: 27 x 1, 9 x 3, 3 x 9, 1 x 27 epochs.
- ``medianstop`` (optional): the plain search plus NNI's Medianstop assessor, as in
  ``search_spaces/*-early.yml``.

Printed per search: wall time (create to done), trials, trial-epochs spent, the best validation
error of a full-budget (R-epoch) trial and its configuration. Then each search's best
configuration re-run on R epochs over fresh training seeds (the quality check: a best error
reached by luck of one seed shows here), the seed-to-seed noise, and the ratios against plain.
Searches of one seed run one after the other, so load from other processes hits the arms alike;
compare the ratios, not the absolute seconds.

Measured (2026-11-25, the defaults, 2 cores, quiet machine; 2,852 s in all):

    search     seed   wall s trials epochs best val %  best configuration
    plain         1    413.1     27    729      10.69  layers=3,4 λ3=1.46 λ4=0.128
    hyperband     1    170.3     40    108      10.95  layers=3 λ3=2.06
    plain         2    400.5     27    729      10.77  layers=3 λ3=1.06
    hyperband     2    168.8     40    108      11.12  layers=3 λ3=5.4
    plain         3    407.8     27    729      10.81  layers=4 λ4=0.0101
    hyperband     3    166.8     40    108      10.73  layers=3,4 λ3=0.851 λ4=0.0127
    re-run over seeds 100-102: plain 11.08, 11.09, 10.98 %; hyperband 11.24, 11.18, 11.04 %
    hyperband/plain: wall 0.41 ± 0.01 (target <= 0.5), trial-epochs 0.15; re-run error +0.10 pp,
    seed-to-seed noise 0.23 pp -> same quality within the noise

(Those figures are from cold starts, ``--start cold``; trials now start warm by default.)
Wall time falls less than trial-epochs because every cold trial pays ~4 s of start-up (torch, NNI
and the data set) and Hyperband runs 40 trials to plain's 27; the rounds of one bracket also wait
for their slowest trial. An earlier Medianstop run (10 configurations x 6 epochs) saved little:
0.74x wall, 0.87x trial-epochs, since it stops only trials worse than the median (1-4 of 10 here).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # NNI experiments in a private HOME: tests/nni_runner.py

from nni_runner import decode, finished_experiment  # noqa: E402

from advisors.hyperband import brackets  # noqa: E402
from trials import contract  # noqa: E402
from trials.mlp import MLPParams  # noqa: E402
from trials.mlp import main as train_mlp  # noqa: E402

ARMS = ("plain", "hyperband", "medianstop")
# NNI 3.0's local training service records an assessor's stop as USER_CANCELED (its V3asV1 wrapper
# sets the early-stop flag only after the stopped trial has ended): both mean "stopped".
STOPPED = {"EARLY_STOPPED", "USER_CANCELED"}
SEARCH_SPACE: dict[str, Any] = {
    "layers": {"_type": "choice", "_value": ["none", "2", "3", "4", "3,4"]},
    **{f"lambda_{k}": {"_type": "loguniform", "_value": [0.01, 100]} for k in (2, 3, 4)},
}


@dataclasses.dataclass(frozen=True)
class Search:
    wall_s: float
    trials: int
    stopped: int
    trial_epochs: int
    best_val: float  # the best validation error % of a full-budget trial
    best_params: dict[str, Any]


def experiment_config(args: argparse.Namespace, arm: str, seed: int) -> dict[str, Any]:
    rounds = brackets(args.epochs, args.eta)[0]  # the first bracket's (configurations, epochs)
    configs = rounds[0][0]  # the search's N, for every arm
    config: dict[str, Any] = {
        "experimentName": f"search-speed-{arm}-{seed}",
        "searchSpace": SEARCH_SPACE,
        "trialCommand": (
            f"python -m {'trials.warm mlp' if args.start == 'warm' else 'trials.mlp'} "
            f"--model mlp4 --dataset {args.dataset} --epochs {args.epochs} "
            f"--lr {args.lr} --threads 1"
        ),
        "trialCodeDirectory": str(REPO),
        "trialConcurrency": args.concurrency,
        "maxTrialNumber": configs,
        "maxExperimentDuration": "2h",
        "trainingService": {"platform": "local"},
    }
    if arm == "hyperband":
        config["maxTrialNumber"] = sum(n for n, _ in rounds)  # exactly the first bracket
        config["advisor"] = {
            "codeDirectory": str(REPO),
            "className": "advisors.hyperband.Hyperband",
            "classArgs": {"optimize_mode": "minimize", "R": args.epochs, "eta": args.eta,
                          "exec_mode": "serial", "seed": seed},  # fmt: skip
        }
    else:
        config["tuner"] = {"name": "Random", "classArgs": {"seed": seed}}
    if arm == "medianstop":
        config["assessor"] = {
            "name": "Medianstop",
            "classArgs": {"optimize_mode": "minimize", "start_step": args.start_step},
        }
    return config


def run_search(args: argparse.Namespace, arm: str, seed: int) -> Search:
    with tempfile.TemporaryDirectory(prefix="nni-home-") as home:
        t0 = time.perf_counter()
        # Create to done (the manager's status polled each second); stopped on leaving.
        with finished_experiment(Path(home), experiment_config(args, arm, seed), 7200) as exp:
            wall = time.perf_counter() - t0
    jobs, metrics, ran = exp.trials, exp.metrics, exp.ran_parameters()
    failed = [j["trialJobId"] for j in jobs if j["status"] not in {"SUCCEEDED", *STOPPED}]
    if failed:
        raise RuntimeError(f"trials {failed} of {exp.id} did not succeed")
    finals = []
    for m in metrics:
        if m["type"] != "FINAL":
            continue
        report = decode(m["data"])
        # Full budget only: Hyperband's shorter rounds are not comparable with R-epoch trials.
        if report.get(contract.EPOCHS_RUN) == args.epochs:
            params = dict(ran[m["trialJobId"]])
            params.pop(contract.TRIAL_BUDGET, None)
            finals.append((float(report[contract.DEFAULT]), params))
    best_val, best_params = min(finals, key=lambda f: f[0])
    epochs = sum(1 for m in metrics if m["type"] == "PERIODICAL")
    stopped = sum(1 for j in jobs if j["status"] in STOPPED)
    return Search(wall, len(jobs), stopped, epochs, best_val, best_params)


def rerun(args: argparse.Namespace, params: dict[str, Any], seeds: list[int]) -> list[float]:
    """The configuration's best validation error with fresh training seeds, in this process."""
    out = []
    for seed in seeds:
        p = MLPParams(model="mlp4", dataset=args.dataset, epochs=args.epochs, lr=args.lr,
                      threads=args.rerun_threads, seed=seed, **params)  # fmt: skip
        with contextlib.redirect_stderr(io.StringIO()):  # per-epoch lines: not needed here
            out.append(float(train_mlp(p)["default"]))
    return out


def mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {std:.2f}"


def describe(params: dict[str, Any]) -> str:
    """The configuration as it trained: λ of the layers it regularizes only."""
    layers = str(params.get(contract.LAYERS, "none"))
    active = [] if layers == "none" else layers.split(",")
    lams = " ".join(f"λ{k}={params[f'lambda_{k}']:.3g}" for k in active if f"lambda_{k}" in params)
    return f"layers={layers} {lams}".strip()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    arms_help = f"comma-separated, the first is the reference; of {', '.join(ARMS)}"
    parser.add_argument("--arms", default="plain,hyperband", help=arms_help)
    parser.add_argument("--dataset", default="fashion-mnist", help="the trials' data set")
    parser.add_argument("--epochs", type=int, default=27, help="R: the full budget of a trial")
    parser.add_argument("--eta", type=int, default=3, help="Hyperband's halving rate")
    parser.add_argument("--lr", type=float, default=0.05, help="the trials' learning rate")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at a time")
    parser.add_argument("--start", choices=("warm", "cold"), default="warm",
                        help="trials start warm (python -m trials.warm mlp, the default) or cold")
    parser.add_argument("--start-step", type=int, default=3, help="Medianstop's start_step")
    parser.add_argument("--tuner-seeds", default="1,2,3", help="one search per arm per seed")
    parser.add_argument("--rerun-seeds", default="100,101,102", help="fresh training seeds")
    parser.add_argument("--rerun-threads", type=int, default=2, help="torch threads of re-runs")
    args = parser.parse_args(argv)
    args.arm_list = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in args.arm_list if a not in ARMS]
    if bad or len(args.arm_list) < 2:
        parser.error(f"--arms {args.arms!r}: give two or more of {', '.join(ARMS)}")
    if args.epochs < args.eta or args.eta < 2:
        parser.error(f"--epochs {args.epochs} --eta {args.eta}: need eta >= 2 and epochs >= eta")
    try:
        args.seeds = [int(s) for s in args.tuner_seeds.split(",")]
        args.rerun_seed_list = [int(s) for s in args.rerun_seeds.split(",")]
    except ValueError as exc:
        parser.error(f"seeds must be comma-separated integers: {exc}")
    return args


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    rounds = brackets(args.epochs, args.eta)[0]
    print(f"MLP-4 on {args.dataset}: {rounds[0][0]} configurations, full budget {args.epochs} "
          f"epochs (lr {args.lr}), {args.concurrency} trials at a time; tuner seeds {args.seeds}",
          flush=True)  # fmt: skip
    if "hyperband" in args.arm_list:
        plan = ", ".join(f"{n} x {r}" for n, r in rounds)
        print(f"  hyperband: first bracket, eta {args.eta}: {plan} (configurations x epochs)")
    if "medianstop" in args.arm_list:
        print(f"  medianstop: Random + Medianstop(start_step={args.start_step})")
    results: dict[str, list[Search]] = {arm: [] for arm in args.arm_list}
    print(f"\n  {'search':<10} {'seed':>4} {'wall s':>8} {'trials':>6} {'stopped':>7} "
          f"{'epochs':>6} {'best val %':>10}  best configuration")  # fmt: skip
    for seed in args.seeds:
        for arm in args.arm_list:
            s = run_search(args, arm, seed)
            results[arm].append(s)
            print(f"  {arm:<10} {seed:>4} {s.wall_s:8.1f} {s.trials:>6} {s.stopped:>7} "
                  f"{s.trial_epochs:>6} {s.best_val:10.2f}  {describe(s.best_params)}",
                  flush=True)  # fmt: skip

    print(f"\nBest configuration of each search re-run on {args.epochs} epochs with fresh seeds "
          f"{args.rerun_seed_list} (validation error %)")  # fmt: skip
    cache: dict[str, list[float]] = {}
    reruns: dict[str, list[float]] = {arm: [] for arm in args.arm_list}
    for arm, searches in results.items():
        for seed, s in zip(args.seeds, searches, strict=True):
            key = json.dumps(s.best_params, sort_keys=True)
            if key not in cache:
                cache[key] = rerun(args, s.best_params, args.rerun_seed_list)
            reruns[arm].append(statistics.mean(cache[key]))
            print(f"  {arm:<10} tuner seed {seed}: {mean_std(cache[key])}  "
                  f"{describe(s.best_params)}", flush=True)  # fmt: skip

    print(f"\nSummary over {len(args.seeds)} tuner seeds (mean ± std across seeds)")
    for arm in args.arm_list:
        r = results[arm]
        print(f"  {arm:<10} wall {mean_std([s.wall_s for s in r]):>14} s   trial-epochs "
              f"{mean_std([float(s.trial_epochs) for s in r]):>14}   best val "
              f"{mean_std([s.best_val for s in r]):>12} %   re-run "
              f"{mean_std(reruns[arm]):>12} %")  # fmt: skip
    # The training-seed noise of one configuration: the pooled std of its re-runs (each best
    # configuration over the fresh seeds), not the spread of the searches' means.
    spreads = [statistics.variance(v) for v in cache.values() if len(v) > 1]
    noise = statistics.mean(spreads) ** 0.5 if spreads else 0.0
    reference = args.arm_list[0]
    for arm in args.arm_list[1:]:
        pairs = list(zip(results[reference], results[arm], strict=True))
        wall = [e.wall_s / p.wall_s for p, e in pairs]
        epochs = [e.trial_epochs / p.trial_epochs for p, e in pairs]
        gap = statistics.mean(reruns[arm]) - statistics.mean(reruns[reference])
        verdict = "same quality within the noise" if abs(gap) <= noise else "outside the noise"
        print(f"  {arm}/{reference}: wall time {mean_std(wall)} (target <= 0.5), trial-epochs "
              f"{mean_std(epochs)}; re-run error {arm} - {reference} = {gap:+.2f} pp, "
              f"seed-to-seed noise (pooled std of a configuration's re-runs) {noise:.2f} pp "
              f"-> {verdict}")  # fmt: skip
    print(f"  ({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
