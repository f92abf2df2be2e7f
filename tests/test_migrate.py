"""fluxa_migrate's planner against a real MariaDB: create, alter, destructive rules."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterator

import pytest

from fluxa_django import (
    Engine,
    Entity,
    MySQLOptions,
    Registry,
    field,
    uint8,
    uint16,
    uint32,
    uint64,
)
from fluxa_django.migrate import MigrationPlan, apply_alters, plan_mysql
from tests.entities import CategoryEntity, EveryTypeEntity, ProductEntity
from tests.services import REDIS_ADDRESS, mysql_uri


def engine_for(db: str, *entities: type[Entity], options: MySQLOptions | None = None) -> Engine:
    registry = Registry()
    registry.register_mysql(mysql_uri(db), options=options)
    registry.register_redis(REDIS_ADDRESS, 0)
    registry.register_redis(REDIS_ADDRESS, 0, "search")
    registry.register_local_cache("default", 100)
    registry.register_entity(*entities)
    return registry.validate()


def migrate(engine: Engine, destructive: bool = False) -> MigrationPlan:
    plan = plan_mysql(engine)
    apply_alters(engine, plan.alters if destructive else plan.safe)
    return plan


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.close()


def test_create_every_table_then_second_run_runs_no_ddl(
    mysql_db: str, engines: list[Engine]
) -> None:
    engine = engine_for(mysql_db, CategoryEntity, ProductEntity, EveryTypeEntity)
    engines.append(engine)
    first = migrate(engine)
    assert sorted((a.kind, a.table) for a in first.alters) == [
        ("create_table", "CategoryEntity"),
        ("create_table", "ProductEntity"),
        ("create_table", "every_type"),
    ]
    assert not first.destructive
    second = plan_mysql(engine)
    assert second.alters == [], [a.sql for a in second.alters]
    tables = {row[0] for row in engine.mysql().query("SHOW TABLES")}
    assert tables == {"CategoryEntity", "ProductEntity", "every_type"}
    # The live table really has the declared DDL (MariaDB renders it its own way).
    create = engine.mysql().query_row("SHOW CREATE TABLE `ProductEntity`")
    assert create is not None
    ddl = create[1]
    assert "`fake_delete` bigint(20) unsigned NOT NULL DEFAULT 0" in ddl
    assert "UNIQUE KEY `Name` (`name`,`fake_delete`)" in ddl
    assert "AUTO_INCREMENT" not in ddl


def test_plan_changes_nothing(mysql_db: str, engines: list[Engine]) -> None:
    engine = engine_for(mysql_db, CategoryEntity)
    engines.append(engine)
    plan = plan_mysql(engine)
    assert [a.kind for a in plan.alters] == ["create_table"]
    assert engine.mysql().query("SHOW TABLES") == []
    assert len(plan_mysql(engine).alters) == 1


# Versions of one entity, as a project would evolve it. Each pair differs by one change.


class V1(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint8
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class LongerName(Entity):
    id: uint64
    name: str = field(length=200)
    age: uint8
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class ShorterName(Entity):
    id: uint64
    name: str = field(length=50)
    age: uint8
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class WiderAge(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint32
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class MoreEnum(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint8
    status: str = field(enum=("a", "b", "c"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class LessEnum(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint8
    status: str = field(enum=("a",))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class NullableAge(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint8 | None
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class AddedColumn(Entity):
    id: uint64
    name: str = field(length=100)
    email: str
    age: uint8
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class AddedIndex(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint8
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}
        unique_indexes = {"Name": ["name"]}


class DroppedIndex(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint8
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"


class ChangedIndex(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint8
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age", "status"]}


class SoftDeleted(Entity):
    id: uint64
    name: str = field(length=100)
    age: uint8
    status: str = field(enum=("a", "b"))
    fake_delete: bool

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


class Reordered(Entity):
    id: uint64
    status: str = field(enum=("a", "b"))
    age: uint8
    name: str = field(length=100)

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


@pytest.mark.parametrize(
    ("target", "expected", "destructive"),
    [
        (
            LongerName,
            [
                "ALTER TABLE `evolving` MODIFY COLUMN `name` varchar(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL DEFAULT ''"
            ],
            False,
        ),
        (
            ShorterName,
            [
                "ALTER TABLE `evolving` MODIFY COLUMN `name` varchar(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL DEFAULT ''"
            ],
            True,
        ),
        (
            WiderAge,
            ["ALTER TABLE `evolving` MODIFY COLUMN `age` int unsigned NOT NULL DEFAULT '0'"],
            False,
        ),
        (
            MoreEnum,
            [
                "ALTER TABLE `evolving` MODIFY COLUMN `status` enum('a','b','c') CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL DEFAULT 'a'"
            ],
            False,
        ),
        (
            LessEnum,
            [
                "ALTER TABLE `evolving` MODIFY COLUMN `status` enum('a') CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL DEFAULT 'a'"
            ],
            True,
        ),
        (
            NullableAge,
            ["ALTER TABLE `evolving` MODIFY COLUMN `age` tinyint unsigned DEFAULT NULL"],
            False,
        ),
        (
            AddedColumn,
            [
                "ALTER TABLE `evolving` ADD COLUMN `email` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL DEFAULT '' AFTER `name`"
            ],
            False,
        ),
        (AddedIndex, ["ALTER TABLE `evolving` ADD UNIQUE INDEX `Name` (`name`)"], False),
        (DroppedIndex, ["ALTER TABLE `evolving` DROP INDEX `Age`"], True),
        (
            ChangedIndex,
            ["ALTER TABLE `evolving` DROP INDEX `Age`, ADD INDEX `Age` (`age`,`status`)"],
            True,
        ),
        (Reordered, [], False),
    ],
)
def test_one_change_is_exactly_one_alter(
    mysql_db: str,
    engines: list[Engine],
    target: type[Entity],
    expected: list[str],
    destructive: bool,
) -> None:
    base = engine_for(mysql_db, V1)
    engines.append(base)
    migrate(base)
    engine = engine_for(mysql_db, target)
    engines.append(engine)
    plan = plan_mysql(engine)
    assert [a.sql for a in plan.alters] == expected
    assert all(a.destructive is destructive for a in plan.alters)
    migrate(engine, destructive=True)
    assert plan_mysql(engine).alters == [], "applying the change converges"


class TwoNewColumns(Entity):
    id: uint64
    name: str = field(length=100)
    zeta: str
    alpha: uint8
    age: uint8
    status: str = field(enum=("a", "b"))

    class Meta:
        table = "evolving"
        indexes = {"Age": ["age"]}


def test_adjacent_new_columns_are_added_in_declaration_order(
    mysql_db: str, engines: list[Engine]
) -> None:
    base = engine_for(mysql_db, V1)
    engines.append(base)
    migrate(base)
    engine = engine_for(mysql_db, TwoNewColumns)
    engines.append(engine)
    plan = plan_mysql(engine)
    assert [a.sql[-40:].split(" AFTER ")[-1] for a in plan.alters] == ["`name`", "`zeta`"]
    migrate(engine)
    columns = [r[0] for r in engine.mysql().query("SHOW COLUMNS FROM evolving")]
    assert columns == ["id", "name", "zeta", "alpha", "age", "status"]
    assert plan_mysql(engine).alters == []


def test_narrowing_nullable_to_not_null_is_destructive(
    mysql_db: str, engines: list[Engine]
) -> None:
    base = engine_for(mysql_db, NullableAge)
    engines.append(base)
    migrate(base)
    engine = engine_for(mysql_db, V1)
    engines.append(engine)
    plan = plan_mysql(engine)
    assert [(a.kind, a.destructive) for a in plan.alters] == [("modify_column", True)]


def test_dropped_column_is_destructive_and_held_back_without_the_flag(
    mysql_db: str, engines: list[Engine]
) -> None:
    class Slim(Entity):
        id: uint64
        name: str = field(length=100)
        status: str = field(enum=("a", "b"))

        class Meta:
            table = "evolving"

    base = engine_for(mysql_db, V1)
    engines.append(base)
    migrate(base)
    base.mysql().exec("INSERT INTO evolving (id, name, age) VALUES (?, ?, ?)", 1, "kept", 42)
    engine = engine_for(mysql_db, Slim)
    engines.append(engine)
    plan = plan_mysql(engine)
    assert sorted((a.kind, a.destructive) for a in plan.alters) == [
        ("drop_column", True),
        ("drop_index", True),
    ]
    migrate(engine, destructive=False)
    assert engine.mysql().query_row("SELECT age FROM evolving WHERE id = 1") == (42,), "data kept"
    migrate(engine, destructive=True)
    columns = [r[0] for r in engine.mysql().query("SHOW COLUMNS FROM evolving")]
    assert columns == ["id", "name", "status"]


def test_turning_on_fake_delete_adds_column_and_rebuilds_indexes(
    mysql_db: str, engines: list[Engine]
) -> None:
    base = engine_for(mysql_db, V1)
    engines.append(base)
    migrate(base)
    engine = engine_for(mysql_db, SoftDeleted)
    engines.append(engine)
    plan = plan_mysql(engine)
    assert [a.sql for a in plan.alters] == [
        "ALTER TABLE `evolving` ADD COLUMN `fake_delete` bigint unsigned NOT NULL DEFAULT '0' AFTER `status`",
        "ALTER TABLE `evolving` ADD INDEX `FakeDelete` (`fake_delete`)",
        "ALTER TABLE `evolving` DROP INDEX `Age`, ADD INDEX `Age` (`age`,`fake_delete`)",
    ]
    migrate(engine, destructive=True)
    assert plan_mysql(engine).alters == []


def test_table_collation_change_is_planned(mysql_db: str, engines: list[Engine]) -> None:
    base = engine_for(mysql_db, CategoryEntity)
    engines.append(base)
    migrate(base)
    engine = engine_for(mysql_db, CategoryEntity, options=MySQLOptions(default_collate="bin"))
    engines.append(engine)
    plan = plan_mysql(engine)
    assert [(a.kind, a.destructive) for a in plan.alters] == [
        ("table_options", False),
        ("modify_column", True),
    ]
    assert (
        plan.alters[0].sql
        == "ALTER TABLE `CategoryEntity` DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    )
    migrate(engine, destructive=True)
    assert plan_mysql(engine).alters == []


def test_unmanaged_tables_are_listed_never_dropped_unless_named(
    mysql_db: str, engines: list[Engine]
) -> None:
    engine = engine_for(
        mysql_db, CategoryEntity, options=MySQLOptions(ignored_tables=("ignored_one",))
    )
    engines.append(engine)
    for table in ("legacy", "other_legacy", "ignored_one"):
        engine.mysql().exec(f"CREATE TABLE {table} (x int)")
    migrate(engine, destructive=True)
    plan = plan_mysql(engine)
    assert plan.alters == []
    assert plan.unmanaged == [("default", "legacy"), ("default", "other_legacy")]
    named = plan_mysql(engine, drop_tables=["legacy"])
    assert [(a.kind, a.sql, a.destructive) for a in named.alters] == [
        ("drop_table", "DROP TABLE `legacy`", True)
    ]
    tables = {r[0] for r in engine.mysql().query("SHOW TABLES")}
    assert {"legacy", "other_legacy", "ignored_one"} <= tables


def test_missing_primary_key_and_extra_index_are_fixed(
    mysql_db: str, engines: list[Engine]
) -> None:
    engine = engine_for(mysql_db, CategoryEntity)
    engines.append(engine)
    engine.mysql().exec(
        "CREATE TABLE `CategoryEntity` (`id` smallint unsigned NOT NULL, "
        "`name` varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci NOT NULL DEFAULT '', "
        "UNIQUE INDEX `Name` (`name`), INDEX `Extra` (`id`, `name`)) "
        "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci"
    )
    plan = plan_mysql(engine)
    assert [(a.sql, a.destructive) for a in plan.alters] == [
        ("ALTER TABLE `CategoryEntity` ADD PRIMARY KEY (`id`)", False),
        ("ALTER TABLE `CategoryEntity` DROP INDEX `Extra`", True),
    ]


class Mode(enum.StrEnum):
    ON = "on"
    OFF = "off"


class Typed(Entity):
    id: uint16
    day: datetime.date
    mode: Mode

    class Meta:
        table = "evolving"


def test_type_family_change_is_destructive(mysql_db: str, engines: list[Engine]) -> None:
    class Before(Entity):
        id: uint16
        day: str
        mode: Mode

        class Meta:
            table = "evolving"

    base = engine_for(mysql_db, Before)
    engines.append(base)
    migrate(base)
    engine = engine_for(mysql_db, Typed)
    engines.append(engine)
    plan = plan_mysql(engine)
    assert [(a.kind, a.destructive) for a in plan.alters] == [("modify_column", True)]
