"""Entity definitions -> EntitySchema: exact column DDL and every definition error.

The DDL strings are the contract of shared/reference §2.1 adapted to MariaDB
(see docs/entities.md); applying them to a real server is covered by test_migrate.
"""

import datetime
import enum
from decimal import Decimal
from typing import Any

import pytest

from fluxa_django import (
    DefinitionErrors,
    Entity,
    Reference,
    References,
    Registry,
    field,
    uint8,
    uint16,
    uint64,
)
from fluxa_django.schema import (
    EntitySchema,
    FieldKind,
    PoolCatalog,
    SchemaBuilder,
    TableOptions,
    build_schemas,
)
from tests.entities import CategoryEntity, EveryTypeEntity, ProductEntity, Status

ALL = [CategoryEntity, ProductEntity, EveryTypeEntity]
CS = "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci"


@pytest.fixture(scope="module")
def schemas() -> dict[type[Entity], EntitySchema]:
    return build_schemas(ALL)


EXPECTED_DDL = {
    "id": "`id` int unsigned NOT NULL",
    "u8": "`u8` tinyint unsigned NOT NULL DEFAULT '0'",
    "u16": "`u16` smallint unsigned NOT NULL DEFAULT '0'",
    "u32": "`u32` int unsigned NOT NULL DEFAULT '0'",
    "u32m": "`u32m` mediumint unsigned NOT NULL DEFAULT '0'",
    "u64": "`u64` bigint unsigned NOT NULL DEFAULT '0'",
    "i8": "`i8` tinyint NOT NULL DEFAULT '0'",
    "i16": "`i16` smallint NOT NULL DEFAULT '0'",
    "i32": "`i32` int NOT NULL DEFAULT '0'",
    "i32m": "`i32m` mediumint NOT NULL DEFAULT '0'",
    "i64": "`i64` bigint NOT NULL DEFAULT '0'",
    "plain_int": "`plain_int` bigint NOT NULL DEFAULT '0'",
    "n_u8": "`n_u8` tinyint unsigned DEFAULT NULL",
    "n_i64": "`n_i64` bigint DEFAULT NULL",
    "flag": "`flag` tinyint(1) NOT NULL DEFAULT '0'",
    "n_flag": "`n_flag` tinyint(1) DEFAULT NULL",
    "ratio": "`ratio` double NOT NULL DEFAULT '0'",
    "n_ratio": "`n_ratio` double DEFAULT NULL",
    "money": "`money` decimal(12,3) unsigned NOT NULL DEFAULT '0.000'",
    "rounded": "`rounded` double NOT NULL DEFAULT '0'",
    "positive": "`positive` double unsigned NOT NULL DEFAULT '0'",
    "text": f"`text` varchar(255) {CS} NOT NULL DEFAULT ''",
    "n_text": f"`n_text` varchar(255) {CS} DEFAULT NULL",
    "short": f"`short` varchar(20) {CS} NOT NULL DEFAULT ''",
    "long_text": f"`long_text` mediumtext {CS} NOT NULL DEFAULT ''",
    "n_long_text": f"`n_long_text` mediumtext {CS} DEFAULT NULL",
    "data": "`data` blob NOT NULL DEFAULT ''",
    "n_data": "`n_data` blob DEFAULT NULL",
    "medium_data": "`medium_data` mediumblob DEFAULT NULL",
    "long_data": "`long_data` longblob DEFAULT NULL",
    "day": "`day` date NOT NULL DEFAULT '0001-01-01'",
    "n_day": "`n_day` date DEFAULT NULL",
    "moment": "`moment` datetime NOT NULL DEFAULT '1000-01-01 00:00:00'",
    "n_moment": "`n_moment` datetime DEFAULT NULL",
    "status": f"`status` enum('draft','active','archived') {CS} NOT NULL DEFAULT 'draft'",
    "n_status": f"`n_status` enum('draft','active','archived') {CS} DEFAULT NULL",
    "color": f"`color` enum('red','green') {CS} NOT NULL DEFAULT 'red'",
    "tags": f"`tags` set('new','sale') {CS} NOT NULL DEFAULT ''",
    "n_tags": f"`n_tags` set('new','sale') {CS} DEFAULT NULL",
    "sizes": f"`sizes` set('s','m','l') {CS} DEFAULT NULL",
    "category": "`category` smallint unsigned NOT NULL DEFAULT '0'",
    "n_category": "`n_category` smallint unsigned DEFAULT NULL",
    "categories": f"`categories` text {CS} NOT NULL DEFAULT ''",
    "n_categories": f"`n_categories` text {CS} DEFAULT NULL",
    "title": f"`title` varchar(255) {CS} NOT NULL DEFAULT ''",
    "updated_at": "`updated_at` datetime NOT NULL DEFAULT '1000-01-01 00:00:00'",
}


def test_every_field_type_has_the_documented_column_ddl(
    schemas: dict[type[Entity], EntitySchema],
) -> None:
    schema = schemas[EveryTypeEntity]
    assert [c.name for c in schema.columns] == list(EXPECTED_DDL), (
        "declaration order, ignored field left out"
    )
    for column in schema.columns:
        assert column.ddl == EXPECTED_DDL[column.name], column.name


def test_column_kinds_and_metadata(schemas: dict[type[Entity], EntitySchema]) -> None:
    s = schemas[EveryTypeEntity]
    assert s.column("id").kind is FieldKind.ID
    assert s.column("status").enum_class is Status
    assert s.column("status").enum_values == ("draft", "active", "archived")
    assert s.column("color").enum_class is None and s.column("color").kind is FieldKind.ENUM
    assert s.column("tags").kind is FieldKind.SET
    assert s.column("category").reference == "CategoryEntity"
    assert s.column("categories").kind is FieldKind.REFERENCES
    assert s.column("money").decimal == (12, 3)
    assert s.column("rounded").precision == 2
    assert s.column("short").length == 20
    assert s.column("long_text").length is None
    assert s.column("title").searchable and s.column("title").sortable
    u8, i8 = s.column("u8").int_width, s.column("i8").int_width
    assert u8 is not None and u8.max == 255 and u8.min == 0
    assert i8 is not None and i8.min == -128 and i8.max == 127
    assert s.redis_search == "search"
    with pytest.raises(KeyError, match="skipped"):
        s.column("skipped")


def test_product_entity_meta_and_fake_delete_index_rules(
    schemas: dict[type[Entity], EntitySchema],
) -> None:
    s = schemas[ProductEntity]
    assert (s.table, s.mysql_pool, s.redis_cache, s.local_cache) == (
        "ProductEntity",
        "default",
        "default",
        "default",
    )
    assert s.fake_delete
    fd = s.column("fake_delete")
    assert fd.kind is FieldKind.FAKE_DELETE
    assert fd.ddl == "`fake_delete` bigint unsigned NOT NULL DEFAULT '0'", (
        "fake_delete takes the id's type"
    )
    indexes = {i.name: i for i in s.indexes}
    assert indexes["Name"].columns == ("name", "fake_delete") and indexes["Name"].unique
    assert indexes["Name"].cached
    assert indexes["CategoryStatus"].columns == ("category", "status", "fake_delete")
    assert indexes["FakeDelete"].columns == ("fake_delete",) and not indexes["FakeDelete"].unique
    sql = s.create_table_sql()
    assert sql.startswith("CREATE TABLE `ProductEntity` (\n  `id` bigint unsigned NOT NULL,")
    assert "UNIQUE INDEX `Name` (`name`,`fake_delete`)" in sql
    assert sql.endswith(
        "PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci"
    )
    assert "AUTO_INCREMENT" not in sql


class SoftWithLeadingIndex(Entity):
    id: uint64
    name: str
    fake_delete: bool

    class Meta:
        indexes = {"Deleted": ["fake_delete", "name"]}


def test_no_standalone_fake_delete_index_when_one_starts_with_it() -> None:
    s = build_schemas([SoftWithLeadingIndex])[SoftWithLeadingIndex]
    assert [(i.name, i.columns) for i in s.indexes] == [("Deleted", ("fake_delete", "name"))]


def test_pool_charset_and_collation_come_from_the_pool_options() -> None:
    pools = PoolCatalog(mysql={"default": TableOptions("utf8mb4", "utf8mb4_bin")})
    s = build_schemas([CategoryEntity], pools)[CategoryEntity]
    assert (
        s.column("name").ddl
        == "`name` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT ''"
    )
    assert s.create_table_sql().endswith("DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")


# -- definition errors --------------------------------------------------------------


def _errors(
    *classes: type[Entity], pools: PoolCatalog | None = None
) -> list[tuple[str, str, str, str]]:
    builder = SchemaBuilder(classes, pools)
    builder.build()
    return [(e.code, e.entity, e.field, str(e)) for e in builder.errors]


def _one_error(
    cls: type[Entity], code: str, fieldname: str, match: str, *others: type[Entity]
) -> None:
    errors = _errors(cls, *others)
    assert len(errors) == 1, errors
    got_code, entity, got_field, message = errors[0]
    assert (got_code, entity, got_field) == (code, cls.__name__, fieldname), message
    assert match in message
    assert message.startswith(f"entity {cls.__name__}")


class Unsupported(Entity):
    id: uint64
    payload: dict[str, int]


class DecimalAnnotation(Entity):
    id: uint64
    price: Decimal


class Union2(Entity):
    id: uint64
    value: int | str


class NoId(Entity):
    name: str


class IdNotFirst(Entity):
    name: str
    id: uint64


class SignedId(Entity):
    id: int


class NullableId(Entity):
    id: uint64 | None


class RequiredNullable(Entity):
    id: uint64
    name: str | None = field(required=True)


class BadLength(Entity):
    id: uint64
    name: str = field(length=70000)


class ZeroLength(Entity):
    id: uint64
    name: str = field(length=0)


class LengthOnInt(Entity):
    id: uint64
    age: uint8 = field(length=3)


class MediumintOnSmall(Entity):
    id: uint64
    age: uint16 = field(mediumint=True)


class EmptyEnum(Entity):
    id: uint64
    kind: str = field(enum=())


class DuplicateEnum(Entity):
    id: uint64
    kind: str = field(enum=("a", "a"))


class CommaSet(Entity):
    id: uint64
    kind: str = field(set=("a,b", "c"))


class BadDecimal(Entity):
    id: uint64
    price: float = field(decimal=(5, 6))


class Orphan(Entity):
    id: uint64
    pass


class RefToUnregistered(Entity):
    id: uint64
    parent: Reference[Orphan]


class RefsToUnregistered(Entity):
    id: uint64
    parents: References[Orphan]


class BadTable(Entity):
    id: uint64

    class Meta:
        table = "drop table; --"


class UnknownMeta(Entity):
    id: uint64

    class Meta:
        cache = True


class WrongMetaType(Entity):
    id: uint64

    class Meta:
        indexes = [["name"]]


class UnknownIndexColumn(Entity):
    id: uint64
    name: str

    class Meta:
        indexes = {"Missing": ["nope"]}


class DuplicateIndexColumn(Entity):
    id: uint64
    name: str

    class Meta:
        indexes = {"Twice": ["name", "name"]}


class SameIndexTwice(Entity):
    id: uint64
    name: str

    class Meta:
        indexes = {"A": ["name"], "B": ["name"]}


class RedundantPrefix(Entity):
    id: uint64
    name: str
    age: uint8

    class Meta:
        indexes = {"Name": ["name"], "NameAge": ["name", "age"]}


class CachedNotUnique(Entity):
    id: uint64
    name: str

    class Meta:
        cached_unique_indexes = {"Name": ["name"]}


class IndexOnText(Entity):
    id: uint64
    body: str = field(length="max")

    class Meta:
        indexes = {"Body": ["body"]}


class SortableOnly(Entity):
    id: uint64
    name: str = field(sortable=True)


class SearchableBlob(Entity):
    id: uint64
    data: bytes = field(searchable=True)


class NullableFakeDelete(Entity):
    id: uint64
    fake_delete: bool | None


class UnknownMySQLPool(Entity):
    id: uint64

    class Meta:
        mysql = "logs"


class DefaultValue(Entity):
    id: uint64
    age: uint8 = 3


class Unresolvable(Entity):
    id: uint64
    parent: "Reference[DoesNotExist]"  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.parametrize(
    ("cls", "code", "fieldname", "match"),
    [
        (Unsupported, "E010", "payload", "is not supported: store JSON as `str`"),
        (DecimalAnnotation, "E010", "price", "use `float` with field(decimal=(precision, scale))"),
        (Union2, "E010", "value", "only `X | None`"),
        (NoId, "E011", "id", "first field must be `id`"),
        (IdNotFirst, "E011", "id", "first field must be `id`"),
        (SignedId, "E012", "id", "unsigned"),
        (NullableId, "E012", "id", "unsigned, non-nullable"),
        (RequiredNullable, "E013", "name", "contradicts"),
        (BadLength, "E014", "name", "1..65535"),
        (ZeroLength, "E014", "name", "1..65535"),
        (LengthOnInt, "E015", "age", "'length' does not apply"),
        (MediumintOnSmall, "E015", "age", "int32/uint32 only"),
        (EmptyEnum, "E016", "kind", "non-empty"),
        (DuplicateEnum, "E016", "kind", "distinct"),
        (CommaSet, "E016", "kind", "'a,b'"),
        (BadDecimal, "E017", "price", "decimal (5, 6)"),
        (RefToUnregistered, "E018", "parent", "Orphan is not registered"),
        (RefsToUnregistered, "E018", "parents", "Orphan is not registered"),
        (BadTable, "E020", "", "not a valid identifier"),
        (UnknownMeta, "E021", "", "unknown Meta option 'cache'"),
        (WrongMetaType, "E021", "", "Meta.indexes has the wrong type"),
        (UnknownIndexColumn, "E022", "nope", "unknown column 'nope'"),
        (DuplicateIndexColumn, "E023", "", "lists a column twice"),
        (SameIndexTwice, "E023", "", "'A' and 'B' are the same"),
        (RedundantPrefix, "E025", "", "'Name' is redundant"),
        (CachedNotUnique, "E024", "", "not in Meta.unique_indexes"),
        (IndexOnText, "E026", "body", "text/blob"),
        (SortableOnly, "E029", "name", "`sortable` needs `searchable`"),
        (SearchableBlob, "E029", "data", "cannot be searchable"),
        (NullableFakeDelete, "E030", "fake_delete", "not nullable"),
        (UnknownMySQLPool, "E027", "", "mysql pool 'logs' is not registered"),
        (DefaultValue, "E015", "age", "default value"),
        (Unresolvable, "E019", "parent", "cannot be resolved"),
    ],
)
def test_definition_errors_name_entity_and_field(
    cls: type[Entity], code: str, fieldname: str, match: str
) -> None:
    if code == "E027":
        errors = _errors(
            cls, pools=PoolCatalog(mysql={"default": TableOptions("utf8mb4", "utf8mb4_bin")})
        )
        assert [(c, e) for c, e, _, _ in errors] == [(code, cls.__name__)]
        assert match in errors[0][3]
        return
    _one_error(cls, code, fieldname, match)


def test_invalid_field_name_is_reported() -> None:
    bad = type(
        "BadField",
        (Entity,),
        {"__annotations__": {"id": uint64, "bad-name": str}, "__module__": __name__},
    )
    errors = _errors(bad)
    assert [(c, f) for c, _, f, _ in errors] == [("E020", "bad-name")]


class SameTableA(Entity):
    id: uint64

    class Meta:
        table = "shared"


class SameTableB(Entity):
    id: uint64

    class Meta:
        table = "shared"


def test_two_entities_cannot_share_a_table_in_one_pool() -> None:
    errors = _errors(SameTableA, SameTableB)
    assert [(c, e) for c, e, _, _ in errors] == [("E028", "SameTableB")]
    assert "also used by entity SameTableA" in errors[0][3]


def test_reference_to_an_entity_with_a_broken_definition_is_reported_too() -> None:
    class Target(Entity):
        name: str  # no id

    class Holder(Entity):
        id: uint64
        target: Reference[Target]

    errors = _errors(Target, Holder)
    assert {(c, e) for c, e, _, _ in errors} == {("E011", "Target"), ("E018", "Holder")}


def test_build_schemas_raises_all_errors_at_once() -> None:
    with pytest.raises(DefinitionErrors) as info:
        build_schemas([BadLength, EmptyEnum])
    assert [e.code for e in info.value.errors] == ["E014", "E016"]
    assert "and 1 more" in str(info.value)


def test_ignored_and_classvar_fields_have_no_column() -> None:
    from typing import ClassVar

    class WithExtras(Entity):
        id: uint8
        name: str
        helper: ClassVar[int] = 3
        transient: Any = field(ignore=True)

    s = build_schemas([WithExtras])[WithExtras]
    assert [c.name for c in s.columns] == ["id", "name"]


def test_inherited_fields_come_first() -> None:
    class Base(Entity):
        id: uint64
        created_at: datetime.datetime

    class Child(Base):
        name: str

    s = build_schemas([Child])[Child]
    assert [c.name for c in s.columns] == ["id", "created_at", "name"]


def test_enum_values_with_quotes_are_escaped_in_ddl() -> None:
    class Quote(enum.StrEnum):
        A = "it's"
        B = "back\\slash"

    class Quoted(Entity):
        id: uint64
        q: Quote

    s = build_schemas([Quoted])[Quoted]
    assert s.column("q").ddl.startswith("`q` enum('it''s','back\\\\slash')")


class ManyProblems(Entity):
    id: uint64
    parent: "Reference[NotDefinedAnywhere]"  # type: ignore[name-defined]  # noqa: F821
    name: str = field(length=0)
    age: uint8 = 3

    class Meta:
        indexes = {"A": ["nope"], "B": ["nope2"]}
        cache = True


def test_one_definition_error_hides_no_other() -> None:
    registry = Registry()
    registry.register_mysql("mysql://root@127.0.0.1:3306/unused")
    registry.register_entity(ManyProblems)
    found = sorted((e.code, e.field) for e in registry.check())
    assert found == [
        ("E014", "name"),
        ("E015", "age"),
        ("E019", "parent"),
        ("E021", ""),
        ("E022", "nope"),
        ("E022", "nope2"),
    ]
