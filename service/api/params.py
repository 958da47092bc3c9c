"""Shared query parameters (validated by FastAPI: a bad value is a 422 naming it)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query

from storage.queries import MAX_LIMIT, MAX_OFFSET

TrialStatus = Literal[
    "WAITING", "RUNNING", "SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED",
    "EARLY_STOPPED", "UNKNOWN",
]  # fmt: skip
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, 1..{MAX_LIMIT}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"rows to skip, 0..{MAX_OFFSET}")]
Model = Annotated[str | None, Query(max_length=64, description="e.g. mlp4")]
Dataset = Annotated[str | None, Query(max_length=64, description="e.g. digits")]
Layers = Annotated[
    str | None,
    Query(pattern=r"^(none|\d+(,\d+)*)$", description="'none' or comma-separated layer indices"),
]
Status = Annotated[TrialStatus | None, Query(description="NNI trial status")]
