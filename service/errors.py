"""The one mapping from our typed errors (storage's, NNI launching's) to HTTP status codes."""

from __future__ import annotations

from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from service.cache import AnswerBusy
from service.nni_launcher import LaunchError
from storage.errors import (
    Conflict,
    InvalidValue,
    NotFound,
    SourceError,
    StorageError,
    StorageUnavailable,
)

STATUS: dict[type[Exception], int] = {
    LaunchError: 502,  # nnictl failed or no port was free: NNI, not the request, is at fault
    AnswerBusy: 503,  # the answer is still being computed: the same request later gets it
    NotFound: 404,
    InvalidValue: 422,
    Conflict: 409,
    SourceError: 502,
    StorageUnavailable: 503,
}


def status_of(exc: Exception) -> int:
    for cls, code in STATUS.items():
        if isinstance(exc, cls):
            return code
    return 500


async def error_handler(request: Request, exc: Exception) -> Response:
    code = status_of(exc)
    if request.url.path.startswith("/api") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": str(exc)}, status_code=code)
    # Browsers get a readable page rather than raw JSON.
    body = f"<!doctype html><title>{code}</title><h1>{code}</h1><p>{escape(str(exc))}</p>"
    body += '<p><a href="/">experiments</a></p>'
    return HTMLResponse(body, status_code=code)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StorageError, error_handler)
    app.add_exception_handler(LaunchError, error_handler)
    app.add_exception_handler(AnswerBusy, error_handler)
