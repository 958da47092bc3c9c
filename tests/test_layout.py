"""The import rules of the packages, read from the source with ``ast`` (nothing is imported):
storage stores (no SciPy, optuna or YAML), analysis answers through storage's public queries (no
ORM models, no SQLAlchemy), trials stand alone, modules stay small, and no module reaches for
another's private names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("trials", "storage", "analysis", "service", "advisors")
MAX_LINES = 450


def modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def project_modules() -> list[Path]:
    found = modules(*PACKAGES, "benchmarks", "tests")
    return sorted(p for p in found if ".venv" not in p.parts)


def imported(path: Path) -> Iterator[tuple[str, str | None]]:
    """(module, name) of every import in ``path``: ``import a.b`` gives ("a.b", None),
    ``from a import b`` gives ("a", "b"), at any depth (imports inside functions count)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                yield node.module, alias.name


def top(module: str) -> str:
    return module.split(".")[0]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_storage_imports_no_scipy_optuna_or_yaml() -> None:
    banned = {"scipy", "optuna", "yaml"}
    offenders = [
        f"{rel(p)}: {m}" for p in modules("storage") for m, _ in imported(p) if top(m) in banned
    ]
    assert offenders == []


def _reaches_orm(module: str, name: str | None) -> bool:
    if top(module) == "sqlalchemy":
        return True
    if module == "storage.models" or module.startswith("storage.models."):
        return True
    return module == "storage" and name == "models"


def test_analysis_never_touches_the_orm_or_sqlalchemy() -> None:
    offenders = [
        f"{rel(p)}: {m}" + (f" import {n}" if n else "")
        for p in modules("analysis")
        for m, n in imported(p)
        if _reaches_orm(m, n)
    ]
    assert offenders == []


def test_trials_import_neither_storage_service_nor_analysis() -> None:
    banned = {"storage", "service", "analysis"}
    offenders = [
        f"{rel(p)}: {m}" for p in modules("trials") for m, _ in imported(p) if top(m) in banned
    ]
    assert offenders == []


def test_modules_stay_small() -> None:
    sizes = {rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in modules(*PACKAGES)}
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def _project_roots() -> set[str]:
    roots = set(PACKAGES) | {"benchmarks"}
    roots |= {p.stem for p in (ROOT / "tests").glob("*.py")}  # test helpers: nni_runner, ...
    return roots


def test_no_module_imports_a_private_name_of_another() -> None:
    roots = _project_roots()
    offenders = [
        f"{rel(p)}: from {m} import {n}"
        for p in project_modules()
        for m, n in imported(p)
        if n is not None and n.startswith("_") and top(m) in roots
    ]
    assert offenders == []


@pytest.mark.parametrize("package", ["storage", "analysis", "trials"])
def test_the_rules_see_every_module(package: str) -> None:
    assert len(modules(package)) > 3
