"""All configuration in one place: environment variables with the ``NSR_`` prefix."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def data_dir() -> Path:
    """The user's data directory for nsr-search (XDG_DATA_HOME respected)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return Path(base) / "nsr-search"


def default_database_url() -> str:
    return f"sqlite:///{data_dir() / 'nsr.sqlite'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NSR_", extra="ignore")

    database_url: str = Field(
        default_factory=default_database_url,
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://... for a team",
    )
    data_root: Path = Field(
        default_factory=lambda: data_dir() / "data", description="where trials find data sets"
    )
    nni_dir: Path = Field(
        default_factory=lambda: Path(os.path.expanduser("~")) / "nni-experiments",
        description="NNI's experiment directory holding the .experiment registry",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=1, le=65535)
    sync_interval: float = Field(
        default=5.0, ge=0, description="seconds between background syncs; 0 turns it off"
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="when set, every write (POST /api/sync, POST /api/import, "
        "DELETE /api/experiments/<id>) needs 'Authorization: Bearer <token>'",
    )
    max_import_mb: int = Field(default=1024, ge=1, description="largest nni.sqlite upload")
    ui_refresh_seconds: float = Field(
        default=10.0, ge=0, description="how often an open experiment page reloads its trials "
        "while NNI's manager runs; 0 turns it off",
    )  # fmt: skip

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_no_token(cls, value: object) -> object:
        # `NSR_API_TOKEN=` in an env file means "unset", not "the empty string is the token".
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value

    @property
    def open_to_network(self) -> bool:
        """Bound beyond loopback without a write token: anyone who can reach it may write."""
        return self.api_token is None and self.host not in {"127.0.0.1", "localhost", "::1"}
