"""Command line: ``python -m service {init,sync,serve}``. Errors are one line and exit 2."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from service.nni_launcher import LaunchError
from service.settings import Settings, setting_error
from storage.db import Database
from storage.errors import StorageError
from storage.sync import ingest_sqlite_file, sync_all

FOREIGN_COMMAND_HELP = (
    "for a foreign search only (its trials did not report their configuration, or its stored "
    "command is not this project's): the trial command to run instead; a stored command is "
    "never run"
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m service",
        description="nsr-search results service: ingest NNI experiments into a database and "
        "serve best λ, layer recommendations and plots. Configuration comes from NSR_* "
        "environment variables (NSR_DATABASE_URL, NSR_NNI_DIR, NSR_HOST, NSR_PORT, "
        "NSR_SYNC_INTERVAL, NSR_API_TOKEN); the options below override them.",
    )
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("init", help="create or migrate the database schema, then exit")
    s = sub.add_parser(
        "sync",
        help="ingest every experiment of NNI's registry once (idempotent), then exit",
        description="Read NNI's registry (<nni-dir>/.experiment): running experiments through "
        "their manager's REST API, stopped ones from <logDir>/<id>/db/nni.sqlite (read-only). "
        "Syncing twice changes nothing. Exit status 1 when some experiment could not be read.",
    )
    s.add_argument(
        "--nni-dir", type=Path, help="NNI experiment directory (default ~/nni-experiments)"
    )
    s.add_argument(
        "--sqlite",
        type=Path,
        action="append",
        default=[],
        metavar="NNI_SQLITE",
        help="ingest this nni.sqlite file instead of the registry (repeatable)",
    )
    r = sub.add_parser(
        "report",
        help="the paper's tables from stored results (Markdown or CSV)",
        description="Per (model, data set, budget): vanilla vs NSR, NSR per layer subset and per "
        "regularizer family, each cell the test error mean ± std over n (confirmation runs "
        "where they exist, else marked unconfirmed), with the paper's figure where comparable.",
    )
    r.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    r.add_argument("--output", type=Path, help="write here instead of standard output")
    c = sub.add_parser(
        "confirm",
        help="plan (and --start) the confirmation runs of a model's best configurations",
        description="Re-run the top-k configurations of a (model, data set, budget) search and "
        "vanilla over fresh seeds no stored trial used, as an NNI experiment (Batch tuner). "
        "Writes its YAML; with --start runs `nnictl create` on it. Once synced, compare and the "
        "model page give the verdict from these runs.",
    )
    c.add_argument("model")
    c.add_argument("dataset")
    c.add_argument("--budget", help="training budget (default: the one with the most trials)")
    c.add_argument("--top-k", type=int, default=3, help="configurations to confirm (default 3)")
    c.add_argument("--seeds", type=int, default=5, help="fresh seeds per configuration (5)")
    c.add_argument("--concurrency", type=int, default=2, help="NNI trialConcurrency (2)")
    c.add_argument("--start", action="store_true", help="start it with nnictl")
    c.add_argument("--extend", metavar="EXPERIMENT_ID",
                   help="the id of a confirmation experiment: run its configurations over "
                   "--seeds more fresh seeds (--top-k and --per-family do not apply); the "
                   "verdict pools both runs, its p adjusted for the looks")  # fmt: skip
    c.add_argument("--command", dest="user_command", help=FOREIGN_COMMAND_HELP)
    c.add_argument(
        "--per-family",
        action="store_true",
        help="the best --top-k of each regularizer family (NSR and every baseline, Table 4)",
    )
    w = sub.add_parser(
        "search-space",
        help="the next search of a model, narrowed by stored results (NNI YAML)",
        description="Layers: vanilla, the variance rule's and the empirically best; λ: around "
        "the best region. Prints an NNI experiment config ready for `nnictl create --config`.",
    )
    w.add_argument("model")
    w.add_argument("dataset")
    w.add_argument("--budget", help="training budget (default: the one with the most trials)")
    w.add_argument("--command", dest="user_command", help=FOREIGN_COMMAND_HELP)
    v = sub.add_parser("serve", help="run the web UI and REST API (syncs in the background)")
    v.add_argument("--host", help="bind address (default 127.0.0.1)")
    v.add_argument("--port", type=int, help="port (default 8765)")
    v.add_argument("--nni-dir", type=Path, help="NNI experiment directory")
    v.add_argument("--sync-interval", type=float, help="seconds between syncs; 0 = off")
    return p


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "database_url": args.database_url,
        "nni_dir": getattr(args, "nni_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "sync_interval": getattr(args, "sync_interval", None),
    }
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.command == "serve":
        import uvicorn

        from service.app import create_app

        if settings.open_to_network:
            if not settings.allow_open_bind:
                print(f"error: refusing to listen on {settings.host} without NSR_API_TOKEN: anyone "
                      "who can reach the port could sync, import and delete. Set NSR_API_TOKEN "
                      "(at least 16 characters), bind 127.0.0.1 (NSR_HOST), or accept it with "
                      "NSR_ALLOW_OPEN_BIND=true", file=sys.stderr)  # fmt: skip
                return 2
            print(f"warning: listening on {settings.host} without NSR_API_TOKEN "
                  "(NSR_ALLOW_OPEN_BIND): anyone who can reach this port may sync, import and "
                  "delete", file=sys.stderr)  # fmt: skip
        # Answers are computed on worker threads; a shorter GIL switch interval (5 ms by default)
        # lets the event loop, which serves /api/health and cached answers, in between.
        sys.setswitchinterval(0.001)
        app = create_app(settings)
        print(f"nsr-search service on http://{settings.host}:{settings.port}/", flush=True)
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
        return 0
    db = Database(settings.database_url)
    try:
        db.migrate()
        if args.command == "init":
            print(f"database ready: {db.engine.url.render_as_string(hide_password=True)}")
            return 0
        if args.command in ("report", "confirm", "search-space"):
            return _answer(db, settings, args)
        if args.sqlite:
            for path in args.sqlite:
                r = ingest_sqlite_file(db, path)
                print(f"{r.nni_id}: {r.inserted} new, {r.updated} updated, {r.unchanged} unchanged")
            return 0
        report = sync_all(db, settings.nni_dir)
        print(
            f"{report.experiments} experiments ({report.skipped} unchanged), "
            f"{report.inserted} trials new, {report.updated} updated, "
            f"{report.unchanged} unchanged in {report.seconds:.2f}s"
        )
        for err in report.errors:
            print(f"error: {err}", file=sys.stderr)
        return 1 if report.errors else 0
    finally:
        db.dispose()


def _answer(db: Database, settings: Settings, args: argparse.Namespace) -> int:
    from analysis.confirmation import confirmation_plan
    from analysis.report import paper_report
    from analysis.rerun import Rerun
    from analysis.warm_start import warm_start
    from service.nni_launcher import start_confirmation, write_plan
    from service.report import to_csv, to_markdown
    from storage.queries import Group

    with db.session_scope() as s:
        if args.command == "report":
            report = paper_report(s)
            text = to_csv(report) if args.format == "csv" else to_markdown(report)
            if args.output:
                args.output.write_text(text)
                print(f"report written to {args.output}", file=sys.stderr)
            else:
                print(text, end="")
            return 0
        group = Group(args.model, args.dataset, args.budget)
        rerun = Rerun(training_service=settings.training_service, command=args.user_command)
        if args.command == "search-space":
            print(warm_start(s, group, rerun).yaml, end="")
            return 0
        plan = confirmation_plan(
            s, group, args.top_k, args.seeds, args.concurrency, args.per_family, rerun,
            extend=args.extend,
        )
    if plan.user_command is not None:
        print(f"running your command for a foreign search: {plan.user_command}", file=sys.stderr)
    if args.start:
        started = start_confirmation(plan, settings)
        print(f"confirmation experiment {started.nni_id} started ({plan.n_trials} trials, "
              f"seeds {plan.seeds}); NNI's UI: {started.nni_url}; "
              f"config: {started.config_path}")  # fmt: skip
    else:
        path = write_plan(plan)
        print(f"{plan.n_trials} trials ({len(plan.configurations)} configurations x seeds "
              f"{plan.seeds}) written to {path}; start: nnictl create --config {path}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    return run_cli(lambda: run(args), StorageError, LaunchError)


def run_cli(body: Callable[[], int], *expected: type[Exception]) -> int:
    """A command's body, with the CLI's promise: a bad setting or an ``expected`` error is one
    line on stderr and exit status 2, Ctrl-C is 130, never a traceback."""
    try:
        return body()
    except ValidationError as exc:
        print(f"error: {setting_error(exc)}", file=sys.stderr)
        return 2
    except expected as exc:
        # Driver messages span lines; the promise is one line.
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
