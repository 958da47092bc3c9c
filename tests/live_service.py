"""The results service on a real socket (uvicorn in a thread), for browser and HTTP tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from service.app import create_app
from service.settings import Settings


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """Serve ``create_app(settings)`` on a free loopback port; yields its base URL once it
    answers /api/health, and stops it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings, background_sync=False)
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/api/health").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield base
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


REPO = Path(__file__).resolve().parents[1]


@contextmanager
def serve_process(env: Mapping[str, str], start_seconds: float = 60) -> Iterator[str]:
    """``python -m service serve`` in a process of its own (``env`` holds its NSR_ settings) on a
    free loopback port; yields its base URL once it answers /api/health, then ends it (killed if
    a computation keeps it past 30 s)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port)],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_seconds
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                tail = server.stderr.read().decode()[-2000:] if server.stderr else ""
                raise RuntimeError(f"the service did not start: {tail}")
            time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
