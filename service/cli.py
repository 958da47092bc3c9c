"""Command line: ``python -m service {init,sync,serve}``. Errors are one line and exit 2."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from service.settings import Settings
from storage.db import Database
from storage.errors import StorageError
from storage.sync import ingest_sqlite_file, sync_all


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


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        print(f"error: bad setting {where} (NSR_{where.upper()}): {msg}", file=sys.stderr)
        return 2
    except StorageError as exc:
        # Driver messages span lines; the CLI promise is one line.
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
