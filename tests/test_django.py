"""Django wiring: system checks, get_engine(), database aliases, fluxa_migrate."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connections
from django.test import override_settings

from fluxa_django import (
    ConfigError,
    Engine,
    Entity,
    PoolError,
    Registry,
    field,
    get_engine,
    uint16,
)
from fluxa_django.checks import check_fluxa
from fluxa_django.conf import registry_from_settings, reset_engine
from tests.services import REDIS_ADDRESS, mysql_uri
from tests.settings import DATABASE


@pytest.fixture(autouse=True)
def fresh_engine() -> Iterator[None]:
    """Each test builds its own engine; the session's (plugin) engine is kept aside."""
    from fluxa_django import conf

    saved = conf._engine
    conf._engine = None
    yield
    reset_engine()
    conf._engine = saved


def fluxa(db: str = "unused", entities: list[str] | None = None, **pool: Any) -> dict[str, Any]:
    default = {"mysql": {"uri": mysql_uri(db)}, "redis": f"{REDIS_ADDRESS}:0", **pool}
    return {"POOLS": {"default": default}, "ENTITIES": entities or ["tests.migrate_entities"]}


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


# -- system checks -------------------------------------------------------------------


def test_project_settings_pass_the_checks() -> None:
    assert check_fluxa() == []
    call_command("check", stdout=io.StringIO())


def test_broken_entity_is_reported_with_a_fluxa_error_id() -> None:
    with override_settings(FLUXA=fluxa(entities=["tests.broken_entities"])):
        messages = check_fluxa()
        assert sorted(ids(messages)) == ["fluxa.E014", "fluxa.E022"]
        assert {m.obj for m in messages} == {"BadLengthEntity", "BadIndexEntity"}
        with pytest.raises(SystemCheckError, match=r"fluxa\.E014"):
            call_command("check", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.parametrize(
    ("setting", "expected", "match"),
    [
        (
            {"POOLS": {"default": {"mysql": {"uri": "nonsense"}}}},
            "fluxa.E001",
            "mysql pool 'default'",
        ),
        ({"POOLS": {"default": {"postgres": {}}}}, "fluxa.E001", "unknown pool kind 'postgres'"),
        ({"POOLS": {}, "ENTITY": []}, "fluxa.E001", "unknown key 'ENTITY'"),
        ({"POOLS": {}, "ENTITIES": ["tests.no_such_module"]}, "fluxa.E002", "tests.no_such_module"),
        ({"POOLS": {}, "ENTITIES": "tests.entities"}, "fluxa.E001", "list of module paths"),
        (
            {"POOLS": {}, "ENTITIES": ["tests.migrate_entities"]},
            "fluxa.E027",
            "mysql pool 'default' is not registered",
        ),
        ({"POOLS": {"default": {"mysql": {"database": "nope"}}}}, "fluxa.E001", "alias 'nope'"),
    ],
)
def test_bad_settings_are_reported(setting: dict[str, Any], expected: str, match: str) -> None:
    with override_settings(FLUXA=setting):
        messages = check_fluxa()
    assert ids(messages) == [expected]
    assert match in messages[0].msg


def test_missing_setting_is_reported() -> None:
    with override_settings():
        from django.conf import settings

        del settings.FLUXA
        assert ids(check_fluxa()) == ["fluxa.E001"]


def test_checks_do_no_network_io() -> None:
    # Unroutable pools: a check that tried to connect would fail or hang.
    setting = {
        "POOLS": {
            "default": {
                "mysql": {"uri": "root:@tcp(127.0.0.1:1)/x"},
                "redis": "127.0.0.1:1:0",
                "local_cache": 10,
            },
            "search": {"redis": "127.0.0.1:1:0"},
            "events": {"kafka": {"brokers": ["127.0.0.1:1"]}},
            "analytics": {"clickhouse": {"uri": "clickhouse://127.0.0.1:1/default"}},
        },
        "ENTITIES": ["tests.entities"],
    }
    started = time.monotonic()
    with override_settings(FLUXA=setting):
        assert check_fluxa() == []
    assert time.monotonic() - started < 2


def test_password_never_appears_in_check_messages() -> None:
    setting = {"POOLS": {"default": {"mysql": {"uri": "root:s3cr3t-PW@tcp(127.0.0.1:3306)"}}}}
    with override_settings(FLUXA=setting):
        messages = check_fluxa()
    assert ids(messages) == ["fluxa.E001"]
    assert "s3cr3t-PW" not in messages[0].msg


# -- engine -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_get_engine_uses_the_django_database_alias_and_is_built_once() -> None:
    registry = registry_from_settings()
    uri = registry.mysql_pools["default"].uri
    assert uri.database == connections["default"].settings_dict["NAME"]
    assert uri.database == f"test_{DATABASE}"
    engine = get_engine()
    assert isinstance(engine, Engine)
    assert get_engine() is engine
    assert engine.option("app_name") == "fluxa-tests"
    row = engine.mysql().query_row("SELECT DATABASE()")
    assert row == (uri.database,)


def test_get_engine_starts_without_unreachable_pools_and_names_them(
    mysql_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="fluxa_django")
    with override_settings(FLUXA=fluxa(mysql_db, redis="127.0.0.1:1:0")):
        engine = get_engine()  # pools fail alone: the engine is built
        assert list(engine.unavailable) == ["redis:default"]
        assert engine.mysql().query_row("SELECT 1") == (1,), "the other pools work"
        assert any("redis pool 'default' is unavailable" in r.getMessage() for r in caplog.records)
        assert "redis:default" in engine.probe()
    reset_engine()
    with override_settings(FLUXA=fluxa("no_such_db_x")):
        engine = get_engine()
        assert list(engine.unavailable) == ["mysql:default"]
        with pytest.raises(PoolError, match=r"mysql pool 'default'.*Unknown database"):
            engine.mysql().query("SELECT 1")


def test_validate_called_directly_stays_strict(mysql_db: str) -> None:
    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_redis("127.0.0.1:1", 0)
    with pytest.raises(PoolError, match="redis pool 'default'"):
        registry.validate()
    engine = registry.validate(allow_unavailable=["default"])
    try:
        assert list(engine.unavailable) == ["redis:default"]
    finally:
        engine.close()


# -- fluxa_migrate --------------------------------------------------------------------


def run_migrate(
    *args: str, answer: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None
) -> str:
    out = io.StringIO()
    if answer is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("builtins.input", lambda _prompt: answer)
        call_command("fluxa_migrate", *args, stdout=out)
    else:
        call_command("fluxa_migrate", *args, "--noinput", stdout=out)
    return out.getvalue()


def tables(db: str) -> set[str]:
    reset_engine()  # a fresh engine: the one the command built is closed
    return {r[0] for r in get_engine().mysql().query("SHOW TABLES")} if db else set()


def test_migrate_without_a_terminal_says_to_use_noinput(
    mysql_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_terminal(_prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", no_terminal)
    with override_settings(FLUXA=fluxa(mysql_db)):
        with pytest.raises(CommandError, match="--noinput"):
            call_command("fluxa_migrate", stdout=io.StringIO())
        assert tables(mysql_db) == set(), "nothing applied"


def test_migrate_plan_then_apply_then_nothing(mysql_db: str) -> None:
    with override_settings(FLUXA=fluxa(mysql_db)):
        out = run_migrate("--plan")
        assert "Safe changes (1):" in out and "CREATE TABLE `ShopItem`" in out
        assert "--plan: nothing applied." in out
        assert tables(mysql_db) == set()
        out = run_migrate()
        assert "Applying 1/1 [default] create_table ShopItem" in out
        assert "Applied 1 change(s)." in out
        assert tables(mysql_db) == {"ShopItem"}
        assert "No changes" in run_migrate()


def test_migrate_holds_back_destructive_changes(mysql_db: str) -> None:
    with override_settings(FLUXA=fluxa(mysql_db)):
        run_migrate()
        engine = get_engine()
        engine.mysql().exec("ALTER TABLE ShopItem ADD COLUMN legacy int, ADD INDEX Legacy (legacy)")
        engine.mysql().exec("CREATE TABLE old_stuff (x int)")
        out = run_migrate()
        assert "Destructive changes (2):" in out
        assert "DROP COLUMN `legacy`" in out and "DROP INDEX `Legacy`" in out
        assert "2 destructive change(s) held back" in out
        assert "Unmanaged tables" in out and "default.old_stuff" in out
        columns = [r[0] for r in engine.mysql().query("SHOW COLUMNS FROM ShopItem")]
        assert "legacy" in columns
        out = run_migrate("--allow-destructive")
        assert "Applied 2 change(s)." in out
        columns = [r[0] for r in engine.mysql().query("SHOW COLUMNS FROM ShopItem")]
        assert columns == ["id", "title"]
        assert "old_stuff" in tables(mysql_db), "an unmanaged table is never dropped unasked"
        out = run_migrate("--allow-destructive", "--drop-table", "old_stuff")
        assert "DROP TABLE `old_stuff`" in out
        assert tables(mysql_db) == {"ShopItem"}


def test_migrate_asks_before_applying(mysql_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with override_settings(FLUXA=fluxa(mysql_db)):
        out = run_migrate(answer="n", monkeypatch=monkeypatch)
        assert "Nothing applied." in out
        assert tables(mysql_db) == set()
        out = run_migrate(answer="y", monkeypatch=monkeypatch)
        assert "Applied 1 change(s)." in out


def test_migrate_reports_pool_errors_as_command_errors() -> None:
    with (
        override_settings(FLUXA=fluxa("no_such_database_x")),
        pytest.raises(CommandError, match="mysql pool 'default'"),
    ):
        run_migrate()


# -- stale generated code -----------------------------------------------------------------


def test_check_reports_generated_code_that_does_not_match_the_definitions() -> None:
    from fluxa_django.checks import check_generated_code

    assert check_generated_code() == [], "the project's generated code is current"
    stale = {"ENTITIES": ["tests.migrate_entities"], "GENERATED_PACKAGE": "tests.generated"}
    with override_settings(FLUXA={**fluxa(), **stale}):
        (message,) = check_generated_code()
        assert message.id == "fluxa.E004" and "fluxa_generate" in (message.hint or "")
    with override_settings(FLUXA={**fluxa(), "ENTITIES": []}):
        assert [m.id for m in check_fluxa()] == ["fluxa.E005"]
        with pytest.raises(SystemCheckError, match=r"fluxa\.E005"):
            call_command("fluxa_migrate", "--plan", skip_checks=False, stdout=io.StringIO())


def test_generate_with_no_entity_removes_nothing(tmp_path: Any) -> None:
    from fluxa_django import generate
    from fluxa_django.codegen.generator import HEADER

    kept = tmp_path / "old_entity.py"
    kept.write_text(HEADER + "\n")
    with pytest.raises(ConfigError, match="nothing was generated and no generated module"):
        generate(Registry(), tmp_path)
    assert kept.exists()


def test_a_stale_provider_names_the_fix_instead_of_a_sql_error(mysql_db: str) -> None:
    from tests.generated import CategoryEntityProvider

    class CategoryEntity(Entity):  # the definition changed: a column the code lacks
        id: uint16
        name: str = field(required=True)
        released: str

        class Meta:
            unique_indexes = {"Name": ["name"]}

    registry = Registry()
    registry.register_mysql(mysql_uri(mysql_db))
    registry.register_entity(CategoryEntity)
    engine = registry.validate()
    try:
        with pytest.raises(ConfigError, match=r"CategoryEntity: the generated code does not match"):
            CategoryEntityProvider.get_by_id(engine.new_context(), 1)
    finally:
        engine.close()


# -- a Redis pool sharing a django-redis cache's settings -----------------------------------


def test_a_redis_pool_can_name_a_django_redis_cache(mysql_db: str) -> None:
    from django.core.cache import caches as django_caches

    from tests.services import REDIS_TEST_DB

    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://{REDIS_ADDRESS}/{REDIS_TEST_DB}",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.7},
        },
    }
    with override_settings(CACHES=caches, FLUXA=fluxa(mysql_db, redis={"cache": "shared"})):
        django_caches["shared"].set("fluxa-shared-probe", 42)  # a real django-redis cache
        engine = get_engine()
        pool = engine.redis()
        assert (pool.address, pool.db) == (REDIS_ADDRESS, REDIS_TEST_DB)
        assert (pool.options.connect_timeout, pool.options.read_timeout) == (0.5, 0.7)
        assert list(pool.client.scan_iter("*fluxa-shared-probe*")), "the cache's database"
        assert django_caches["shared"].get("fluxa-shared-probe") == 42
        reset_engine()
        with override_settings(FLUXA=fluxa(mysql_db, redis={"cache": "default"})):
            with pytest.raises(ConfigError, match="is not a django-redis cache"):
                registry_from_settings()
        with override_settings(FLUXA=fluxa(mysql_db, redis={"cache": "nope"})):
            with pytest.raises(ConfigError, match="'nope' is not in CACHES"):
                registry_from_settings()
