"""The public surface is pinned, as httpx's tests/test_exported_members.py does.

``fluxa_django.__all__`` must equal the names documented in docs/api.md ("Public API"),
sorted the way ruff's RUF022 sorts ``__all__``, and every one of them must import. A name
added to the code but not to the page (or to the page but not the code) fails here.
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

import fluxa_django

API_PAGE = Path(__file__).resolve().parent.parent / "docs" / "api.md"
# A table row of docs/api.md: | `name` | one-line description |
_ROW = re.compile(r"^\|\s*`(?P<name>[A-Za-z_][A-Za-z0-9_]*)`\s*\|\s*(?P<text>.*?)\s*\|\s*$")


def documented_names() -> list[str]:
    """The first-column names of every table row on docs/api.md, in page order."""
    names: list[str] = []
    for line in API_PAGE.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        assert match["text"], f"docs/api.md: {match['name']} has no description"
        names.append(match["name"])
    return names


def isort_key(name: str) -> tuple[int, tuple[str | int, ...]]:
    """RUF022's order: SCREAMING_SNAKE_CASE, then CamelCase, then the rest; natural sort within."""
    if len(name) > 1 and name.isupper():
        category = 0
    elif name[:1].isupper():
        category = 1
    else:
        category = 2
    parts = re.split(r"(\d+)", name)
    return category, tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def test_api_page_lists_each_name_once() -> None:
    names = documented_names()
    assert names, "docs/api.md lists no names"
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert duplicates == []


def test_all_equals_the_documented_list_sorted() -> None:
    documented = documented_names()
    exported = list(fluxa_django.__all__)
    assert sorted(set(documented) - set(exported)) == [], "on docs/api.md, not in __all__"
    assert sorted(set(exported) - set(documented)) == [], "in __all__, not on docs/api.md"
    assert exported == sorted(documented, key=isort_key), "__all__ is not in RUF022 order"


def test_every_documented_name_imports() -> None:
    namespace: dict[str, object] = {}
    exec("from fluxa_django import *", namespace)
    missing = [name for name in documented_names() if name not in namespace]
    assert missing == [], "from fluxa_django import * does not give these"
    for name in documented_names():
        assert namespace[name] is getattr(fluxa_django, name)


def test_no_public_name_outside_all() -> None:
    """Every public, non-module attribute of the package is in ``__all__``."""
    extra = [
        name
        for name, value in vars(fluxa_django).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"  # from __future__ import annotations
        and name not in fluxa_django.__all__
    ]
    assert extra == []


@pytest.mark.parametrize(
    ("name", "cls"),
    [("IntegrityError", "FluxaError"), ("OperationalError", "FluxaError")],
)
def test_driver_errors_are_fluxa_errors(name: str, cls: str) -> None:
    assert issubclass(getattr(fluxa_django, name), getattr(fluxa_django, cls))
