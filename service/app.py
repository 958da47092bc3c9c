"""The FastAPI application: REST under /api, pages at /, static files, background sync."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import docs, errors
from service.api import router as api_router
from service.background_sync import Syncer
from service.cache import ResponseCache
from service.guard import BrowserGuard
from service.settings import Settings
from service.web import mount as mount_web
from storage.db import Database


def create_app(settings: Settings | None = None, *, background_sync: bool = True) -> FastAPI:
    settings = settings or Settings()
    db = Database(settings.database_url)
    db.migrate()
    cache = ResponseCache(
        db, heavy_workers=settings.heavy_workers, deadline=settings.answer_seconds
    )
    syncer = Syncer(db, settings.nni_dir, on_change=cache.invalidate)
    # Imports get their own thread, one at a time: a slow upload never takes the threads that
    # the background sync and the cached answers run in. (Not shut down with the lifespan: the
    # thread starts at the first import and an app may serve again after a lifespan ended.)
    importer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsr-import")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if background_sync and settings.sync_interval > 0:
            task = asyncio.create_task(syncer.loop(settings.sync_interval))
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        cache.close()  # the heavy-answer worker processes exit with the service
        db.dispose()

    app = FastAPI(
        title="nsr-search results",
        description="Every NNI experiment of the NSR search: best λ, layer recommendation, "
        "vanilla vs NSR.",
        version="0.1.0",
        lifespan=lifespan,
        # /docs is served from local assets (service.docs); ReDoc would need a CDN, so it is off.
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(BrowserGuard, trusted_hosts=settings.trusted_hosts)
    app.state.settings = settings
    app.state.db = db
    app.state.syncer = syncer
    app.state.cache = cache
    app.state.importer = importer
    app.state.import_lock = asyncio.Lock()
    errors.install(app)
    app.include_router(api_router)
    docs.install(app)
    mount_web(app)
    return app
