"""The layers point one way (docs/architecture.md), checked on the source itself.

Every ``import`` statement is read with ``ast`` (function-level imports too), so
a lazy ``from django.db import ...`` deep inside the runtime is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "fluxa_django"

# The Django adapter: the only modules that may import Django.
DJANGO_GLUE = {
    "apps.py",
    "checks.py",
    "conf.py",
    "debug.py",
    "middleware.py",
    "transactions.py",
    "management",
    "testing",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(*parts: str) -> list[Path]:
    return sorted(PACKAGE.joinpath(*parts).rglob("*.py"))


def non_glue_modules() -> list[Path]:
    return [p for p in modules() if p.relative_to(PACKAGE).parts[0] not in DJANGO_GLUE]


def test_the_glue_list_names_real_modules() -> None:
    names = {p.name for p in PACKAGE.iterdir()}
    assert names >= DJANGO_GLUE
    assert len(non_glue_modules()) > 30


@pytest.mark.parametrize("path", non_glue_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_glue_imports_django(path: Path) -> None:
    django = sorted(m for m in imported_modules(path) if m == "django" or m.startswith("django."))
    assert django == [], f"{path.relative_to(PACKAGE)} imports {django}"


@pytest.mark.parametrize("path", modules("backends"), ids=lambda p: p.name)
def test_backends_do_not_import_the_layers_above(path: Path) -> None:
    above = sorted(
        m
        for m in imported_modules(path)
        if m.startswith(("fluxa_django.runtime", "fluxa_django.codegen", "fluxa_django.registry"))
    )
    assert above == [], f"backends/{path.name} imports {above}"


@pytest.mark.parametrize("name", ["tiers.py", "flushkeys.py", "mysql.py", "invalidation.py"])
def test_the_read_path_below_the_provider_never_imports_it(name: str) -> None:
    imported = imported_modules(PACKAGE / "runtime" / name)
    assert "fluxa_django.runtime.provider" not in imported
    assert "fluxa_django.runtime.flush" not in imported


def test_the_tiers_know_nothing_of_flush_key_planning() -> None:
    source = (PACKAGE / "runtime" / "tiers.py").read_text()
    assert "FlushKeys" not in source and "collect_keys" not in source
    assert "self.provider" not in source and "ProviderBase" not in source
