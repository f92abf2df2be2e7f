"""The generated code's static types, checked with mypy (the repo's strict config).

One mypy run over one snippet; every line that mypy must flag ends with
``# E: <error code>``, every ``reveal_type`` line with ``# R: <expected type>``.
Lines without a marker must produce no error, so the snippet also shows that
the correct spellings type-check.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SNIPPET = """\
from django.http import HttpRequest, JsonResponse

from fluxa_django import Context, Pager, Query, RedisSearchQuery, Where
from fluxa_django.middleware import FluxaHttpRequest
from tests.generated import (
    BookEntity,
    BookEntityProvider,
    CategoryEntity,
    CategoryEntityProvider,
    EveryTypeEntity,
    EveryTypeEntityProvider,
    Genre,
    ProductEntity,
    ProductEntityProvider,
    Status,
    Tag,
)


def reads(ctx: Context) -> None:
    reveal_type(ProductEntityProvider.get_by_id(ctx, 1))  # R: tests.generated.product_entity.ProductEntity | None
    reveal_type(ProductEntityProvider.must_get_by_id(ctx, 1))  # R: tests.generated.product_entity.ProductEntity
    reveal_type(ProductEntityProvider.search_many(ctx, Query()))  # R: list[tests.generated.product_entity.ProductEntity]
    reveal_type(ProductEntityProvider.get_by_ids(ctx, [1, 2]))  # R: list[tests.generated.product_entity.ProductEntity]
    reveal_type(ProductEntityProvider.search_many_with_total(ctx, Query()))  # R: tuple[list[tests.generated.product_entity.ProductEntity], int]
    reveal_type(ProductEntityProvider.search_one(ctx, Where("1")))  # R: tests.generated.product_entity.ProductEntity | None
    reveal_type(ProductEntityProvider.search_ids(ctx, Where("1"), Pager(1, 2)))  # R: list[int]
    reveal_type(ProductEntityProvider.count(ctx, Query()))  # R: int
    reveal_type(ProductEntityProvider.get_by_unique_index_name(ctx, "a"))  # R: tests.generated.product_entity.ProductEntity | None
    reveal_type(EveryTypeEntityProvider.get_by_index_status_color(ctx, Status.ACTIVE, "red"))  # R: list[tests.generated.every_type_entity.EveryTypeEntity]


def fields(product: ProductEntity, every: EveryTypeEntity) -> None:
    reveal_type(product.id)  # R: int
    reveal_type(product.price)  # R: float
    reveal_type(product.status)  # R: tests.entities.Status
    reveal_type(product.tags)  # R: set[tests.entities.Tag] | None
    reveal_type(product.category)  # R: tests.generated.category_entity.CategoryEntity | None
    reveal_type(product.category_id)  # R: int | None
    reveal_type(product.fake_delete)  # R: bool
    reveal_type(every.color)  # R: Literal['red'] | Literal['green']
    reveal_type(every.sizes)  # R: set[str] | None
    reveal_type(every.categories_ids)  # R: list[int]
    reveal_type(every.load_categories())  # R: list[tests.generated.category_entity.CategoryEntity]
    reveal_type(every.moment)  # R: datetime.datetime


def good_assignments(product: ProductEntity, every: EveryTypeEntity, category: CategoryEntity) -> None:
    product.price = 1.5
    product.price = 2
    product.status = Status.DRAFT
    product.tags = {Tag.NEW}
    product.tags = None
    product.weight = None
    product.category = category
    product.category_id = 3
    every.color = "green"
    every.sizes = {"s"}
    every.categories_ids = [1, 2]


def bad_assignments(product: ProductEntity, every: EveryTypeEntity) -> None:
    product.price = "x"  # E: assignment
    product.status = "draft"  # E: assignment
    product.id = 3  # E: misc
    product.name = None  # E: assignment
    product.weight = "heavy"  # E: assignment
    every.color = "blue"  # E: assignment
    every.u8 = "1"  # E: assignment
    every.day = "2024-01-01"  # E: assignment
    product.nmae = "typo"  # E: attr-defined


def bad_queries(ctx: Context) -> None:
    F = ProductEntityProvider.fields
    Query().filter(F.name.eq("ok"), F.price.gte(1.0), F.weight.is_null(), F.name.like("a%"))
    Query().filter(F.status.in_([Status.ACTIVE]), F.released.is_not_null().not_())
    ProductEntityProvider.fields.name.gte(5)  # E: arg-type
    F.status.eq("draft")  # E: arg-type
    F.name.is_null()  # E: attr-defined
    F.price.like("1%")  # E: attr-defined
    F.nmae  # E: attr-defined
    ProductEntityProvider.get_by_unique_index_name(ctx, 5)  # E: arg-type
    ProductEntityProvider.get_by_index_category_status(ctx, 1, "draft")  # E: arg-type
    ProductEntityProvider.search_many(ctx, Where("1"))  # E: arg-type


def entity_bound_queries(ctx: Context) -> None:
    P = ProductEntityProvider.fields
    C = CategoryEntityProvider.fields
    reveal_type(Query())  # R: fluxa_django.runtime.query.Query[fluxa_django.runtime.query.Unfiltered]
    reveal_type(Query().filter(P.name.eq("a")))  # R: fluxa_django.runtime.query.Query[tests.generated.product_entity.ProductEntity]
    reveal_type(Query().sort_by_desc(C.name))  # R: fluxa_django.runtime.query.Query[tests.generated.category_entity.CategoryEntity]
    ProductEntityProvider.search_many(ctx, Query().filter(P.name.eq("a")).sort_by_asc(P.id))
    ProductEntityProvider.count(ctx, Query().filter_where(Where("1")).pager(Pager(1, 2)))
    CategoryEntityProvider.search_one(ctx, Query().filter(C.name.eq("Books")))
    bound = Query[ProductEntity]()
    bound.filter(P.price.lt(3)).sort_by_asc(P.name)
    ProductEntityProvider.search_many_with_total(ctx, bound)
    CategoryEntityProvider.search_many(ctx, Query().filter(P.name.eq("a")))  # E: arg-type
    CategoryEntityProvider.count(ctx, Query().sort_by_asc(P.id))  # E: arg-type
    CategoryEntityProvider.search_one(ctx, bound)  # E: arg-type
    Query().filter(P.name.eq("a"), C.name.eq("b"))  # E: misc
    Query().filter(P.name.eq("a")).filter(C.name.eq("b"))  # E: arg-type
    Query().filter(P.name.eq("a")).sort_by_asc(C.id)  # E: arg-type
    bound.filter(C.name.eq("b"))  # E: arg-type


def redis_search_queries(ctx: Context) -> None:
    B = BookEntityProvider.fields_redis_search
    E = EveryTypeEntityProvider.fields_redis_search
    reveal_type(RedisSearchQuery())  # R: fluxa_django.runtime.search.RedisSearchQuery[fluxa_django.runtime.query.Unfiltered]
    reveal_type(RedisSearchQuery().filter(B.pages.gt(1)))  # R: fluxa_django.runtime.search.RedisSearchQuery[tests.generated.book_entity.BookEntity]
    reveal_type(RedisSearchQuery().sort_by_desc(E.title))  # R: fluxa_django.runtime.search.RedisSearchQuery[tests.generated.every_type_entity.EveryTypeEntity]
    reveal_type(BookEntityProvider.search_many_in_redis(ctx, RedisSearchQuery()))  # R: list[tests.generated.book_entity.BookEntity]
    reveal_type(BookEntityProvider.search_many_in_redis_with_total(ctx, RedisSearchQuery()))  # R: tuple[list[tests.generated.book_entity.BookEntity], int]
    reveal_type(BookEntityProvider.search_one_in_redis(ctx, RedisSearchQuery()))  # R: tests.generated.book_entity.BookEntity | None
    reveal_type(BookEntityProvider.search_ids_in_redis(ctx, RedisSearchQuery()))  # R: list[int]
    reveal_type(BookEntityProvider.count_in_redis(ctx, RedisSearchQuery()))  # R: int
    BookEntityProvider.search_many_in_redis(ctx, RedisSearchQuery().filter(B.title.match("a")).sort_by_asc(B.pages))
    BookEntityProvider.search_ids_in_redis(ctx, RedisSearchQuery[BookEntity]().pager(Pager(1, 5)))
    BookEntityProvider.search_one_in_redis(ctx, RedisSearchQuery().filter(B.genre.eq(Genre.NOVEL).or_(B.summary.is_null())))
    EveryTypeEntityProvider.count_in_redis(ctx, RedisSearchQuery().filter(E.title.match("a", prefix=True)))
    BookEntityProvider.search_many_in_redis(ctx, RedisSearchQuery().filter(E.title.match("a")))  # E: arg-type
    BookEntityProvider.count_in_redis(ctx, RedisSearchQuery().sort_by_asc(E.title))  # E: arg-type
    BookEntityProvider.search_many_in_redis_with_total(ctx, RedisSearchQuery().filter(E.title.match("a")))  # E: arg-type
    RedisSearchQuery[BookEntity]().filter(E.title.match("a"))  # E: arg-type
    RedisSearchQuery().filter(B.pages.gt(1), E.title.match("a"))  # E: misc
    RedisSearchQuery().filter(B.pages.gt(1)).filter(E.title.match("a"))  # E: arg-type
    RedisSearchQuery().filter(B.pages.gt(1)).sort_by_asc(E.title)  # E: arg-type
    B.pages.gt(1).and_(E.title.match("a"))  # E: arg-type
    B.pages.gt("1")  # E: arg-type
    B.genre.eq("novel")  # E: arg-type
    B.title.eq("x")  # E: attr-defined
    B.pages.match("x")  # E: attr-defined
    BookEntityProvider.search_many_in_redis(ctx, Query())  # E: arg-type
    RedisSearchQuery().filter(BookEntityProvider.fields.pages.eq(1))  # E: call-overload


def typed_view(request: FluxaHttpRequest) -> JsonResponse:
    reveal_type(request.fluxa)  # R: fluxa_django.runtime.context.Context
    category = CategoryEntityProvider.get_by_id(request.fluxa, 1)
    return JsonResponse({"name": category.name if category else None})


def untyped_view(request: HttpRequest) -> JsonResponse:
    request.fluxa  # E: attr-defined
    return JsonResponse({})
"""

LINE = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<message>.*)$")


@dataclass(frozen=True)
class Expectation:
    line: int
    kind: str  # "E" or "R"
    value: str
    source: str


EXPECTATIONS = [
    Expectation(number, match.group(1), match.group(2).strip(), text.split("  #")[0].strip())
    for number, text in enumerate(SNIPPET.splitlines(), start=1)
    if (match := re.search(r"# ([ER]): (.+)$", text))
]


@dataclass
class MypyResult:
    output: str
    errors: dict[int, list[str]]
    reveals: dict[int, str]


@pytest.fixture(scope="module")
def mypy_result(tmp_path_factory: pytest.TempPathFactory) -> MypyResult:
    snippet = tmp_path_factory.mktemp("typing") / "fluxa_typing_snippet.py"
    snippet.write_text(SNIPPET)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(REPO / "pyproject.toml"),
            "--no-incremental",
            "--cache-dir",
            "/dev/null",
            "--no-error-summary",
            "--no-pretty",
            "--show-error-codes",
            "--hide-error-context",
            str(snippet),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors: dict[int, list[str]] = {}
    reveals: dict[int, str] = {}
    for raw in proc.stdout.splitlines():
        parsed = LINE.match(raw)
        if parsed is None or Path(parsed["path"]).name != snippet.name:
            continue
        number, message = int(parsed["line"]), parsed["message"]
        if parsed["kind"] == "note" and message.startswith("Revealed type is "):
            reveals[number] = message.removeprefix("Revealed type is ").strip('"')
        elif parsed["kind"] == "error":
            errors.setdefault(number, []).append(message)
    # exit status 1 = type errors found (expected); anything else is a crash or bad usage
    assert proc.returncode == 1, f"mypy failed to run:\n{proc.stdout}\n{proc.stderr}"
    return MypyResult(proc.stdout, errors, reveals)


def _normalise(type_text: str) -> str:
    return type_text.replace("builtins.", "")


@pytest.mark.parametrize(
    "expected",
    [e for e in EXPECTATIONS if e.kind == "R"],
    ids=lambda e: e.source.removeprefix("reveal_type(").removesuffix(")")[:60],
)
def test_revealed_type(mypy_result: MypyResult, expected: Expectation) -> None:
    revealed = mypy_result.reveals.get(expected.line)
    assert revealed is not None, (
        f"no reveal_type note for line {expected.line}:\n{mypy_result.output}"
    )
    assert _normalise(revealed) == expected.value


@pytest.mark.parametrize(
    "expected", [e for e in EXPECTATIONS if e.kind == "E"], ids=lambda e: e.source[:60]
)
def test_misuse_is_flagged(mypy_result: MypyResult, expected: Expectation) -> None:
    messages = mypy_result.errors.get(expected.line, [])
    assert any(m.endswith(f"[{expected.value}]") for m in messages), (
        f"line {expected.line} `{expected.source}` must be a [{expected.value}] error; "
        f"mypy said: {messages}"
    )


def test_correct_code_has_no_errors(mypy_result: MypyResult) -> None:
    flagged = {e.line for e in EXPECTATIONS if e.kind == "E"}
    unexpected = {n: m for n, m in mypy_result.errors.items() if n not in flagged}
    lines = SNIPPET.splitlines()
    assert unexpected == {}, "\n".join(
        f"{n}: {lines[n - 1].strip()} -> {m}" for n, m in sorted(unexpected.items())
    )


def test_messages_name_the_expected_types(mypy_result: MypyResult) -> None:
    by_source = {e.source: e.line for e in EXPECTATIONS}
    price = mypy_result.errors[by_source['product.price = "x"']]
    assert any('expression has type "str", variable has type "float"' in m for m in price)
    status = mypy_result.errors[by_source['product.status = "draft"']]
    assert any('variable has type "Status"' in m for m in status)
    read_only = mypy_result.errors[by_source["product.id = 3"]]
    assert any('Property "id"' in m and "read-only" in m for m in read_only)
