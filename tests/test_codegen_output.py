"""The generated code itself: formatted, lint-clean, stable, and cheap to call.

The generator lays its output out as ``ruff format`` would and sorts imports as
``ruff check`` (isort) wants, without running ruff; these tests run the project's
own ruff on fresh output, including entities whose long names force every kind of
line split. They also pin that one entity's module does not depend on the other
entities of the registry, and that reference getters cost what ``get_by_id`` costs.
"""

from __future__ import annotations

import ast
import datetime
import enum
import shutil
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from fluxa_django import Context, Entity, Reference, References, Registry, field, uint16, uint32
from fluxa_django.codegen import generate, render_package
from fluxa_django.codegen.layout import py_str
from fluxa_django.conf import registry_from_settings
from fluxa_django.testing.plugin import QueryCounter
from tests.entities import CategoryEntity as CategoryDefinition
from tests.generated import (
    CategoryEntityProvider,
    EveryTypeEntityProvider,
    ProductEntityProvider,
    Status,
)

AssertQueries = Callable[..., AbstractContextManager[QueryCounter]]

REPO = Path(__file__).resolve().parent.parent
GENERATED_PACKAGES = [REPO / "tests" / "generated", REPO / "example_project" / "shop" / "fluxa"]


class LoyaltyProgrammeMembershipLevelWithAnExtraordinarilyLongName(enum.StrEnum):
    BRONZE_MEMBERSHIP_LEVEL_WITH_A_LONG_NAME = "bronze_membership_level_with_a_long_value"
    SILVER_MEMBERSHIP_LEVEL_WITH_A_LONG_NAME = "silver_membership_level_with_a_long_value"
    QUOTED = 'it\'s "quoted"'


class AaaSortsFirstEntity(Entity):
    """Sorts before every test entity; references one of them and itself."""

    id: uint16
    name: str
    category: Reference[CategoryDefinition] = field(required=True)
    parent: Reference[AaaSortsFirstEntity] | None


class CustomerLoyaltyProgrammeMembershipWithAVeryLongEntityName(Entity):
    """Names near MySQL's 64-character limit: every statement shape has to wrap."""

    id: uint32
    a_membership_level_column_with_a_very_long_name_that_goes_on_and: (
        LoyaltyProgrammeMembershipLevelWithAnExtraordinarilyLongName | None
    )
    a_literal_enum_column_with_a_very_long_name_that_goes_on_and_on: str | None = field(
        enum=("alpha_value_long", "beta_value_long", "gamma_value_long", "delta_value")
    )
    a_set_column_with_a_very_long_name_that_goes_on_and_on_and_on_x: (
        set[LoyaltyProgrammeMembershipLevelWithAnExtraordinarilyLongName] | None
    )
    an_extraordinarily_long_decimal_amount_column_name_for_wrapping: float = field(
        decimal=(12, 3), unsigned=True
    )
    a_date_column_with_a_very_long_name_that_goes_on_and_on_and_on_: datetime.date | None
    a_string_column_with_a_very_long_name_that_goes_on_and_on_and_o: str | None = field(length=190)
    a_reference_column_with_a_very_long_name_that_goes_on_and_on_an: (
        Reference[CustomerLoyaltyProgrammeMembershipWithAVeryLongEntityName] | None
    )
    a_references_column_with_a_very_long_name_that_goes_on_and_on_a: References[AaaSortsFirstEntity]
    fake_delete: bool

    class Meta:
        redis_cache = True
        unique_indexes = {
            "ALongUniqueIndexName": [
                "a_string_column_with_a_very_long_name_that_goes_on_and_on_and_o",
                "a_date_column_with_a_very_long_name_that_goes_on_and_on_and_on_",
            ],
        }
        cached_unique_indexes = {
            "ALongUniqueIndexName": [
                "a_string_column_with_a_very_long_name_that_goes_on_and_on_and_o",
                "a_date_column_with_a_very_long_name_that_goes_on_and_on_and_on_",
            ],
        }
        indexes = {
            "ByLevel": [
                "a_membership_level_column_with_a_very_long_name_that_goes_on_and",
                "a_date_column_with_a_very_long_name_that_goes_on_and_on_and_on_",
            ],
        }


def _registry(*extra: type[Entity]) -> Registry:
    registry = registry_from_settings()
    registry.register_entity(*extra)
    return registry


def _ruff() -> str:
    found = Path(sys.executable).with_name("ruff")
    if found.exists():
        return str(found)
    on_path = shutil.which("ruff")
    assert on_path is not None, "ruff is not installed (make setup installs it into .venv)"
    return on_path


def _run_ruff(*args: str) -> subprocess.CompletedProcess[str]:
    config = str(REPO / "pyproject.toml")
    command = [_ruff(), *args[:1], "--config", config, "--no-cache", *args[1:]]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain", '"plain"'),
        ("it's", '"it\'s"'),
        ('say "hi"', "'say \"hi\"'"),
        ("a \"b\" 'c'", '"a \\"b\\" \'c\'"'),
        ("back\\slash\n", '"back\\\\slash\\n"'),
        ("", '""'),
    ],
)
def test_string_literals_are_quoted_as_ruff_quotes_them(text: str, literal: str) -> None:
    assert py_str(text) == literal
    assert ast.literal_eval(literal) == text


def test_fresh_output_passes_ruff_format_and_check(tmp_path: Path) -> None:
    package = tmp_path / "generated"
    registry = _registry(
        AaaSortsFirstEntity, CustomerLoyaltyProgrammeMembershipWithAVeryLongEntityName
    )
    generate(registry, package)
    long_module = package / "customer_loyalty_programme_membership_with_a_very_long_entity_name.py"
    assert max(len(line) for line in long_module.read_text().splitlines()) > 100, (
        "the long-name entity no longer exercises line splitting"
    )
    formatted = _run_ruff("format", "--check", "--diff", str(package))
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    linted = _run_ruff("check", str(package))
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_committed_packages_are_current_and_pass_ruff() -> None:
    assert generate(registry_from_settings(), REPO / "tests" / "generated", check=True) == []
    for package in GENERATED_PACKAGES:
        assert _run_ruff("format", "--check", str(package)).returncode == 0, package
        assert _run_ruff("check", str(package)).returncode == 0, package


def test_adding_an_entity_leaves_the_other_modules_unchanged() -> None:
    before = render_package(_registry())
    after = render_package(_registry(AaaSortsFirstEntity))
    assert render_package(_registry()) == before, "output is deterministic"
    assert set(after) - set(before) == {"aaa_sorts_first_entity.py"}
    for name, text in before.items():
        if name != "__init__.py":
            assert after[name] == text, f"{name} changed when an unrelated entity was added"


def test_provider_kind_is_the_entity_name() -> None:
    assert CategoryEntityProvider.kind == "CategoryEntity"
    assert ProductEntityProvider.kind == "ProductEntity"


def _imports_in_functions(source: str) -> list[int]:
    lines: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines += [
                inner.lineno
                for inner in ast.walk(node)
                if isinstance(inner, ast.Import | ast.ImportFrom)
            ]
    return lines


def test_generated_modules_import_only_at_module_level() -> None:
    registry = _registry(
        AaaSortsFirstEntity, CustomerLoyaltyProgrammeMembershipWithAVeryLongEntityName
    )
    sources = dict(render_package(registry))
    for package in GENERATED_PACKAGES:
        sources |= {str(path): path.read_text() for path in sorted(package.glob("*.py"))}
    for name, source in sources.items():
        assert _imports_in_functions(source) == [], name
    assert "from . import category_entity as _category_entity" in sources["product_entity.py"]
    own = sources["aaa_sorts_first_entity.py"]
    assert "return AaaSortsFirstEntityProvider.get_by_id(self._ctx, value)" in own


def test_reference_getter_on_a_context_hit_makes_no_round_trip(
    fluxa_ctx: Context, fluxa_assert_queries: AssertQueries
) -> None:
    category = CategoryEntityProvider.new(fluxa_ctx)
    category.name = "Books"
    product = ProductEntityProvider.new(fluxa_ctx)
    product.name = "Dune"
    product.category = category
    product.status = Status.ACTIVE
    fluxa_ctx.flush()
    ctx = fluxa_ctx.engine.new_context()
    loaded = ProductEntityProvider.must_get_by_id(ctx, product.id)
    by_id = CategoryEntityProvider.get_by_id(ctx, category.id)
    assert by_id is not None
    with fluxa_assert_queries(mysql=0, redis=0):
        assert loaded.category is by_id
        assert loaded.category is by_id

    every = EveryTypeEntityProvider.new(ctx)
    every.categories_ids = [category.id, category.id]
    with fluxa_assert_queries(mysql=0, redis=0):
        loaded_all = every.load_categories()
    assert len(loaded_all) == 1 and loaded_all[0] is by_id
