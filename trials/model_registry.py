"""The custom models registered on this machine: the one trusted source of their function paths.

`nsr-search new-search` records NAME -> (model_fn, data_fn, structure hash) here when a user
builds a search for their own model. A stored trial names its function paths in its `config`,
but a stored record is untrusted (it may come from an imported or synced experiment), so
whatever re-runs a custom model (confirmation plans, re-run commands) takes the paths from this
registry, never from the record, and only for a name registered here.

The file is JSON under the user's data directory (the caller passes its path: trials import
nothing of the service's settings); a write goes through a temporary file and a rename so a
reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

# `package.module:function`: what `importlib` can import, and nothing a shell would interpret.
FUNCTION_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FILE_NAME = "custom_models.json"


class RegistryError(ValueError):
    """A bad name or function path, or a registry file that is not ours."""


@dataclass(frozen=True)
class CustomModel:
    name: str
    model_fn: str  # "module:function", model_fn(num_classes) -> nn.Module
    data_fn: str  # "module:function", data_fn() -> (train, val, test)
    structure_hash: str  # contract-level hash of the model's module tree at registration

    def __post_init__(self) -> None:
        if not MODEL_NAME.match(self.name):
            raise RegistryError(
                f"bad model name {self.name!r}: 1-64 characters of letters, digits, '_', '.', '-'"
            )
        for what, path in (("model_fn", self.model_fn), ("data_fn", self.data_fn)):
            if not FUNCTION_PATH.match(path):
                raise RegistryError(f"bad {what} {path!r}: expected package.module:function")


def load(path: Path) -> dict[str, CustomModel]:
    """Every registered model by name; an absent file is an empty registry."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read the custom-model registry {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise RegistryError(f"{path} is not a custom-model registry (expected a JSON object)")
    models: dict[str, CustomModel] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise RegistryError(f"{path}: entry {name!r} is not an object")
        try:
            models[name] = CustomModel(
                name=name,
                model_fn=str(entry["model_fn"]),
                data_fn=str(entry["data_fn"]),
                structure_hash=str(entry["structure_hash"]),
            )
        except KeyError as exc:
            raise RegistryError(f"{path}: entry {name!r} lacks {exc.args[0]!r}") from exc
    return models


def lookup(path: Path, name: str) -> CustomModel | None:
    return load(path).get(name)


def register(path: Path, model: CustomModel) -> None:
    """Add or replace `model` by name, atomically (a concurrent reader sees old or new)."""
    models = load(path)
    models[model.name] = model
    body = {m.name: {k: v for k, v in asdict(m).items() if k != "name"} for m in models.values()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".custom_models.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(body, out, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
