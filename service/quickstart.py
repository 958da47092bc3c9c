"""The README's main job: search, confirm over fresh seeds, and print the verdict.

    python -m service.quickstart [--config search_spaces/quickstart.yml]

1. starts the results service in the background (or reuses the one already on its port),
2. ``nnictl create`` the search, and follows it to the end with a progress line,
3. syncs the service and prints the search's best configuration and best λ per layer,
4. asks the service to confirm the top configurations and vanilla over fresh seeds
   (``POST /api/models/{model}/{dataset}/confirm?start=true``: an NNI experiment of its own),
   follows it, syncs, and prints the verdict: mean ± std, the 95 % CI of the gain, Welch's p and
   the per-seed wins, all from the REST API, with the addresses of the web UI and of NNI's UI.

The service keeps running afterwards so the results can be browsed; ``make stop`` ends it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from service.cli import run_cli
from service.nni_launcher import REPO, LaunchError, create_experiment, free_port_from, port_is_free
from service.settings import Settings, data_dir
from service.wording import gain, mean_std
from trials import contract

NNI_FINISHED = {"DONE", "STOPPED", "ERROR"}


class QuickstartError(Exception):
    pass


def http_json(
    url: str, method: str = "GET", timeout: float = 10.0, token: SecretStr | None = None
) -> Any:
    request = urllib.request.Request(url, method=method)
    if token is not None:  # the service started with NSR_API_TOKEN: writes need it
        request.add_header("Authorization", f"Bearer {token.get_secret_value()}")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def sync_line(report: Mapping[str, Any]) -> str:
    """One readable line for a ``POST /api/sync`` answer; its errors, if any, on their own lines."""
    counts = ", ".join(f"{report.get(k, 0)} {k}" for k in ("inserted", "updated", "unchanged"))
    line = f"service synced {report.get('experiments', 0)} experiment(s): trials {counts}"
    errors = [str(e) for e in report.get("errors") or []]
    return "\n".join([line, *(f"  sync error: {e}" for e in errors)])


def service_token(settings: Settings) -> SecretStr:
    """The write token for the service the quickstart talks to: ``NSR_API_TOKEN`` when set, else
    one made once and kept, readable by this user only, in the data directory. Starting NNI from
    the service needs a token even on loopback; the service the quickstart starts gets this one."""
    if settings.api_token is not None:
        return settings.api_token
    path = data_dir() / "service.token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return SecretStr(path.read_text().strip())


def ensure_service(settings: Settings, log_path: Path, token: SecretStr) -> str:
    """Start ``python -m service serve`` detached, unless ours already answers on the port."""
    base = f"http://{settings.host}:{settings.port}"
    try:
        http_json(f"{base}/api/health", timeout=2)
        print(f"service: already running at {base}/", flush=True)
        return base
    except (urllib.error.URLError, OSError, ValueError):
        pass
    if not port_is_free(settings.host, settings.port):
        raise QuickstartError(
            f"port {settings.port} on {settings.host} is taken by another program; "
            f"set NSR_PORT to a free port"
        )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        # A new session: the service outlives this script (and `make`), for browsing the results.
        proc = subprocess.Popen(
            [sys.executable, "-m", "service", "serve"],
            env={**os.environ, "NSR_API_TOKEN": token.get_secret_value()},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=REPO,
        )
    # `make stop` (and the tests) end exactly this process through its pid file.
    log_path.with_name("service.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            http_json(f"{base}/api/health", timeout=2)
            print(f"service: started at {base}/ (log: {log_path})", flush=True)
            return base
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.5)
    raise QuickstartError(f"the service did not answer at {base} within 60 s; see {log_path}")


def follow(exp_id: str, port: int, max_trials: int, timeout: float) -> str:
    base = f"http://127.0.0.1:{port}/api/v1/nni"
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        status = http_json(f"{base}/check-status")["status"]
        trials = http_json(f"{base}/trial-jobs")
        counts: dict[str, int] = {}
        for t in trials:
            counts[t["status"]] = counts.get(t["status"], 0) + 1
        line = (
            f"NNI {exp_id}: {status}, trials "
            + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
            + f" (of {max_trials})"
        )
        if line != last:
            print(line, flush=True)
            last = line
        if status in NNI_FINISHED:
            return status
        time.sleep(2)
    raise QuickstartError(f"experiment {exp_id} did not finish within {timeout:.0f} s")


def model_and_dataset(config: dict[str, Any]) -> tuple[str, str]:
    flags = contract.parse_command(config["trialCommand"])
    return flags.get(contract.MODEL, "mlp4"), flags.get(contract.DATASET, "digits")


def verdict_lines(cmp: Mapping[str, Any]) -> list[str]:
    """The compare answer as lines: each configuration against vanilla, with its statistics."""
    kind = "confirmed over fresh seeds" if cmp["confirmed"] else "UNCONFIRMED (search trials)"
    lines = [f"verdict for {cmp['model']} on {cmp['dataset']} [{cmp['budget']}], {kind}:"]
    v = cmp.get("vanilla")
    if v:
        spread = mean_std(v["test_error_mean"], v["test_error_std"])
        lines.append(f"  vanilla: test error {spread} % (n={v['n']})")
    for c in cmp.get("configurations", []):
        st, d = c["stats"], c.get("versus_vanilla") or {}
        lams = " ".join(
            f"λ{layer}={float(val):.4g}" for k, val in st["parameters"].items()
            if (layer := contract.lambda_layer(k)) is not None
        )  # fmt: skip
        spread = mean_std(st["test_error_mean"], st["test_error_std"])
        line = f"  {st['family']} layers={st['layers']} {lams}: test error {spread} % (n={st['n']})"
        worded = gain(
            d.get("difference"), d.get("ci_low"), d.get("ci_high"), d.get("p_welch"),
            d.get("paired_wins"), d.get("paired_seeds"),
        )  # fmt: skip
        if worded:
            line += f"; {worded}"
        lines.append(line)
    if cmp.get("caveat"):
        lines.append(f"  note: {cmp['caveat']}")
    return lines


def summary(base: str, model: str, dataset: str) -> list[str]:
    best = http_json(f"{base}/api/models/{model}/{dataset}/best-config")
    lambdas = http_json(f"{base}/api/models/{model}/{dataset}/best-lambda")
    trial = best.get("trial", best)
    chosen = str(trial.get("layers", "?"))
    lam = ", ".join(f"λ{r['layer']}={r['lam']:.4g}" for r in trial["layer_rows"] if r["lam"])
    lines = [
        f"search's best trial for {model} on {dataset} [{best['budget']}]: "
        f"layers={chosen} {lam}".rstrip(),
        f"  validation error {trial['val_error']:.2f} %, test error {trial['test_error']:.2f} %"
        f" (trial {trial['trial_job_id']} of {trial['experiment']}, seed {trial.get('seed')})",
        "best λ per layer:",
    ]
    for row in lambdas.get("layers", []):
        lines.append(
            f"  layer {row['layer']}: λ={row['lam']:.4g}  validation error {row['val_error']:.2f} %"
            f"  ({row['n_trials']} trials on this layer)"
        )
    lines.append("fitted λ-response per layer subset (validation error vs log λ, all its trials):")
    for sub in lambdas.get("subsets") or []:
        name = "layers " + ",".join(map(str, sub["layers"]))
        if sub.get("recommended") is None:
            lines.append(f"  {name}: no fit ({sub.get('reason')})")
            continue
        fitted = ", ".join(
            f"λ{k}≈{v:.3g} (range {sub['range'][k][0]:.3g}–{sub['range'][k][1]:.3g})"
            for k, v in sub["recommended"].items()
        )  # fmt: skip
        lines.append(f"  {name}: {fitted}, fitted error {sub['best_fitted_error']:.2f} % "
                     f"± {sub['noise']:.2f} noise sd ({sub['n_trials']} trials)")  # fmt: skip
    return lines


def confirm(
    group: str, base: str, top: int, seeds: int, timeout: float, token: SecretStr | None
) -> str:
    """Start the confirmation experiment through the service, follow it, sync."""
    started = time.monotonic()
    answer = http_json(
        f"{group}/confirm?top_k={top}&seeds={seeds}&start=true", method="POST", timeout=200,
        token=token,
    )  # fmt: skip
    plan = answer["plan"]
    port = int(answer["nni_url"].rstrip("/").rsplit(":", 1)[1])
    print(
        f"confirming {len(plan['configurations'])} configurations (top {top} and vanilla) over "
        f"fresh seeds {plan['seeds']}: NNI experiment {answer['nni_id']}, {answer['nni_url']}",
        flush=True,
    )
    status = follow(answer["nni_id"], port, plan["n_trials"], timeout)
    print(f"confirmation {status.lower()} in {time.monotonic() - started:.0f} s", flush=True)
    report = http_json(f"{base}/api/sync", method="POST", timeout=120, token=token)
    print(sync_line(report), flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.quickstart",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=REPO / "search_spaces" / "quickstart.yml",
        help="NNI experiment config to run",
    )
    parser.add_argument(
        "--nni-port",
        type=int,
        default=8080,
        help="port of NNI's manager (the next free one is used if taken)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the search")
    parser.add_argument(
        "--confirm-top", type=int, default=2, help="configurations to confirm (0: skip confirming)"
    )
    parser.add_argument("--confirm-seeds", type=int, default=3, help="fresh seeds per config")
    args = parser.parse_args(argv)
    return run_cli(lambda: quickstart(args), QuickstartError, LaunchError)


def quickstart(args: argparse.Namespace) -> int:
    try:
        return _quickstart(args)
    except urllib.error.HTTPError as exc:
        raise QuickstartError(f"{exc.url} answered {exc.code}: {exc.read()[:300]!r}") from None


def _quickstart(args: argparse.Namespace) -> int:
    settings = Settings()
    if not args.config.is_file():
        raise QuickstartError(f"config {args.config} does not exist")
    config = yaml.safe_load(args.config.read_text())
    model, dataset = model_and_dataset(config)
    token = service_token(settings)
    base = ensure_service(settings, data_dir() / "service.log", token)
    nni_port = free_port_from("127.0.0.1", args.nni_port)
    started = time.monotonic()
    exp_id = create_experiment(args.config, nni_port, bind=settings.nni_bind)
    print(f"NNI experiment {exp_id} started; its own UI: http://127.0.0.1:{nni_port}/", flush=True)
    status = follow(exp_id, nni_port, int(config.get("maxTrialNumber", 0)), args.timeout)
    print(f"search {status.lower()} in {time.monotonic() - started:.0f} s", flush=True)
    report = http_json(f"{base}/api/sync", method="POST", timeout=120, token=token)
    print(sync_line(report), flush=True)
    for line in summary(base, model, dataset):
        print(line)
    group = f"{base}/api/models/{model}/{dataset}"
    if args.confirm_top > 0 and status == "DONE":
        status = confirm(group, base, args.confirm_top, args.confirm_seeds, args.timeout, token)
    cmp = http_json(f"{group}/compare")
    for line in verdict_lines(cmp):
        print(line)
    print(
        f"\nresults UI: {base}/   experiment: {base}/experiments/{exp_id}   "
        f"model: {base}/models/{model}/{dataset}   API docs: {base}/docs"
    )
    print(
        f"NNI's UI stays up at http://127.0.0.1:{nni_port}/ until `nnictl stop {exp_id}`; "
        "`make stop` ends the service and NNI."
    )
    print(f"\nanswer: {cmp['summary']}")  # the verdict in one sentence, last
    return 0 if status == "DONE" else 1


if __name__ == "__main__":
    sys.exit(main())
