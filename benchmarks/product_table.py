"""The paper's Table-1 row for MLP-4, made by the product end to end: search -> confirm -> report.

    python benchmarks/product_table.py [--trials 24] [--epochs 30] [--top-k 3] [--seeds 5]

1. an NNI random search (``search_spaces/mlp4-fashion.yml``: layers none/2/3/4, λ loguniform
   [0.01, 100]) of ``--trials`` trials on Fashion-MNIST (Debian's dataset-fashion-mnist; MNIST
   itself has no offline copy here),
2. a sync into a throwaway database, then the confirmation experiment the service would start
   (``analysis.confirmation``: the top-k configurations and vanilla over fresh seeds),
3. a second sync and the verdict (``analysis.verdict.compare``) and the report (``python -m service
   report``), printed with the 95 % bootstrap CI and Welch's p of every configuration.
NNI runs under a temporary HOME, so the user's own experiments are untouched. Wall times printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from nni_runner import NNIExperiment, free_port  # noqa: E402

from analysis.confirmation import confirmation_plan  # noqa: E402
from analysis.report import paper_report  # noqa: E402
from analysis.verdict import compare  # noqa: E402
from service.report import to_markdown  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.queries import Group  # noqa: E402
from storage.sync import sync_all  # noqa: E402


def run(exp: NNIExperiment, config: dict, label: str, timeout: float) -> float:
    t0 = time.monotonic()
    exp.create(config)
    print(f"{label}: NNI experiment {exp.id} ({config['maxTrialNumber']} trials)", flush=True)
    try:
        exp.wait(timeout)
    finally:
        exp.stop()
    took = time.monotonic() - t0
    done = sum(t["status"] == "SUCCEEDED" for t in exp.trials)
    print(f"{label}: {exp.status}, {done}/{len(exp.trials)} succeeded in {took:.0f} s", flush=True)
    return took


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--trials", type=int, default=24, help="search trials (default 24)")
    p.add_argument("--epochs", type=int, default=30, help="epochs per trial (default 30)")
    p.add_argument("--top-k", type=int, default=3, help="configurations to confirm (3)")
    p.add_argument("--seeds", type=int, default=5, help="fresh seeds per configuration (5)")
    p.add_argument("--concurrency", type=int, default=2, help="NNI trialConcurrency (2)")
    p.add_argument("--timeout", type=float, default=7200, help="seconds per experiment")
    args = p.parse_args()
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        print("error: needs Fashion-MNIST: apt-get install dataset-fashion-mnist", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="nsr-product-table-"))
    config = yaml.safe_load((REPO / "search_spaces" / "mlp4-fashion.yml").read_text())
    command = config["trialCommand"]
    config["trialCommand"] = command.replace("--epochs 30", f"--epochs {args.epochs}")
    config.update(trialCodeDirectory=str(REPO), maxTrialNumber=args.trials,
                  trialConcurrency=args.concurrency)  # fmt: skip
    os.environ.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    db = Database(f"sqlite:///{home / 'results.sqlite'}")
    db.migrate()
    search = NNIExperiment(home=home, port=free_port())
    t_search = run(search, config, "search", args.timeout)
    sync_all(db, search.nni_dir)
    group = Group("mlp4", "fashion-mnist")
    with db.session_scope() as s:
        plan = confirmation_plan(s, group, args.top_k, args.seeds, args.concurrency)
    print(f"confirming {[c.layers for c in plan.configurations]} over seeds {plan.seeds}")
    confirm = NNIExperiment(home=home, port=free_port())
    t_confirm = run(confirm, plan.experiment, "confirmation", args.timeout)
    report = sync_all(db, confirm.nni_dir)
    assert not report.errors, report.errors
    with db.session_scope() as s:
        cmp = compare(s, group)
        md = to_markdown(paper_report(s))
    print(f"\nverdict [{cmp.budget}], confirmed={cmp.confirmed}:")
    v = cmp.vanilla
    if v is not None:
        print(f"  vanilla: test {v.test_error_mean:.2f} ± {v.test_error_std or 0:.2f} % (n={v.n})")
    for c in cmp.configurations:
        st, d = c.stats, c.versus_vanilla
        lams = {k: round(float(x), 4) for k, x in st.parameters.items() if k.startswith("lambda_")}
        line = (f"  {st.family} layers={st.layers} {lams}: test {st.test_error_mean:.2f} ± "
                f"{st.test_error_std or 0:.2f} % (n={st.n})")  # fmt: skip
        if d is not None and d.difference is not None:
            ci = f"[{d.ci_low:+.2f}, {d.ci_high:+.2f}]" if d.ci_low is not None else "n/a"
            p_w = f"{d.p_welch:.3g}" if d.p_welch is not None else "n/a"
            line += (f"; gain {d.difference:+.2f} points, 95 % CI {ci}, Welch p={p_w}, "
                     f"better on {d.paired_wins}/{d.paired_seeds} seeds")  # fmt: skip
        print(line)
    print("\n" + md)
    print(f"search {t_search:.0f} s + confirmation {t_confirm:.0f} s on {os.cpu_count()} cores; "
          f"data in {home}")  # fmt: skip
    db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
