"""Debezium: connector config, the Kafka Connect REST client, fluxa_migrate, the generated
``debezium_topic_name()`` and the change-event parser.

Kafka Connect cannot be installed here (no Java package registry), so the REST client runs
against ``FakeConnect``: a local HTTP server implementing the documented endpoints
(``GET /connectors``, ``GET``/``PUT /connectors/{name}/config``, ``DELETE
/connectors/{name}``), with 409 answers during a "rebalance" and Connect's
``{"error_code", "message"}`` error bodies. The parser runs on envelopes as the Debezium
MySQL connector documents them, with and without converter schemas, in every
``decimal.handling.mode``. The MySQL pool is the real MariaDB (its ``VERSION()`` picks the
connector class) and the Kafka pool the real Tansu broker.
"""

from __future__ import annotations

import base64
import datetime
import enum
import importlib
import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import MySQLdb
import pytest
from django.core.management import call_command

from fluxa_django import Entity, KafkaPoolOptions, Reference, field, uint32
from fluxa_django.codegen import render_package
from fluxa_django.config import DebeziumOptions
from fluxa_django.debezium import (
    MARIADB_CONNECTOR,
    MYSQL_CONNECTOR,
    ConnectClient,
    DebeziumEventError,
    connector_class_for,
    debezium_topic_name,
    decode_decimal,
    parse_debezium_event,
    parse_debezium_key,
    server_id,
)
from fluxa_django.engine import Engine
from fluxa_django.errors import ConfigError, PoolError
from fluxa_django.migrate.debezium import apply_debezium, plan_debezium
from fluxa_django.registry import Registry
from fluxa_django.schema.model import EntitySchema
from tests.services import KAFKA_BROKER, MYSQL_HOST, MYSQL_PORT, REDIS_ADDRESS, REDIS_TEST_DB
from tests.settings import DATABASE

REPO = Path(__file__).resolve().parent.parent
DBZ_DATABASE = f"{DATABASE}_dbz"
PASSWORD = "s3cret-Pa55"


class Mood(enum.StrEnum):
    HAPPY = "happy"
    SAD = "sad"


class DbzCategory(Entity):
    id: uint32
    name: str = field(length=40)

    class Meta:
        debezium = True


class DbzProduct(Entity):
    id: uint32
    name: str = field(length=60)
    price: float = field(decimal=(10, 2))
    weight: float
    active: bool
    mood: Mood
    moods: set[Mood]
    born: datetime.date
    seen: datetime.datetime
    data: bytes
    category: Reference[DbzCategory] | None
    note: str | None

    class Meta:
        debezium = True


class DbzPlain(Entity):
    """Not streamed: no connector table, no generated topic method."""

    id: uint32
    name: str


# -- a Kafka Connect stand-in ------------------------------------------------------------------


class FakeConnect:
    """The Connect REST endpoints fluxa_migrate uses, as documented."""

    def __init__(self) -> None:
        self.connectors: dict[str, dict[str, str]] = {}
        self.conflicts = 0  # answer the next N modifying requests with 409
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, Authorization
        self.bodies: list[Any] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str) -> None:
                self._send(status, {"error_code": status, "message": message})

            def _route(self, method: str) -> None:
                fake.requests.append((method, self.path, self.headers.get("Authorization")))
                parts = self.path.strip("/").split("/")
                body = None
                if method in ("PUT", "POST"):
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length))
                    fake.bodies.append(body)
                if method != "GET" and fake.conflicts:
                    fake.conflicts -= 1
                    self._error(
                        409,
                        "Cannot complete request because of a conflicting operation (e.g. worker rebalance)",
                    )
                    return
                if parts == ["connectors"] and method == "GET":
                    self._send(200, sorted(fake.connectors))
                elif len(parts) == 3 and parts[2] == "config" and method == "GET":
                    config = fake.connectors.get(parts[1])
                    if config is None:
                        self._error(404, f"Connector {parts[1]} not found")
                    else:
                        self._send(200, config)
                elif len(parts) == 3 and parts[2] == "config" and method == "PUT":
                    assert isinstance(body, dict)
                    if "connector.class" not in body:
                        self._error(
                            400,
                            "Connector config {database.password="
                            + str(body.get("database.password"))
                            + "} contains no connector type",
                        )
                        return
                    created = parts[1] not in fake.connectors
                    fake.connectors[parts[1]] = {**body, "name": parts[1]}
                    info = {"name": parts[1], "config": fake.connectors[parts[1]], "tasks": []}
                    self._send(201 if created else 200, info)
                elif len(parts) == 2 and method == "DELETE":
                    if fake.connectors.pop(parts[1], None) is None:
                        self._error(404, f"Connector {parts[1]} not found")
                    else:
                        self._send(204)
                else:
                    self._error(405, "HTTP 405 Method Not Allowed")

            def do_GET(self) -> None:
                self._route("GET")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def connect() -> Iterator[FakeConnect]:
    fake = FakeConnect()
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def dbz_database() -> Iterator[str]:
    conn = MySQLdb.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", passwd="")
    conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{DBZ_DATABASE}`")
    yield DBZ_DATABASE
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{DBZ_DATABASE}`")
    conn.close()


def registry_for(
    url: str, *entities: type[Entity], options: DebeziumOptions | None = None
) -> Registry:
    registry = Registry()
    registry.register_mysql(f"root:@tcp({MYSQL_HOST}:{MYSQL_PORT})/{DBZ_DATABASE}")
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    registry.register_kafka([KAFKA_BROKER], "default", KafkaPoolOptions())
    registry.register_debezium_connect_url(url, "default", options)
    registry.register_entity(*entities)
    return registry


@pytest.fixture
def engines(dbz_database: str) -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.close()


def engine_for(engines: list[Engine], url: str, *entities: type[Entity], **kw: Any) -> Engine:
    engine = registry_for(url, *entities, **kw).validate()
    engines.append(engine)
    return engine


# -- config ------------------------------------------------------------------------------------


def test_server_id_is_stable_and_in_range() -> None:
    assert server_id("default") == server_id("default")
    assert server_id("default") != server_id("archive")
    assert 1000 <= server_id("x") < 101000


@pytest.mark.parametrize(
    ("version", "cls"),
    [
        ("10.11.6-MariaDB-0+deb12u1-log", MARIADB_CONNECTOR),
        ("11.4.2-MariaDB", MARIADB_CONNECTOR),
        ("8.0.36", MYSQL_CONNECTOR),
        ("8.4.0-commercial", MYSQL_CONNECTOR),
    ],
)
def test_connector_class_follows_the_server(version: str, cls: str) -> None:
    assert connector_class_for(version) == cls


def test_bad_decimal_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="decimal_handling_mode"):
        Registry().register_debezium_connect_url(
            "http://x:8083", "default", DebeziumOptions(decimal_handling_mode="exact")
        )


def test_options_never_show_the_password() -> None:
    assert PASSWORD not in repr(DebeziumOptions(password=PASSWORD))


# -- the REST client ---------------------------------------------------------------------------


def test_client_creates_updates_and_deletes(connect: FakeConnect) -> None:
    client = ConnectClient(connect.url)
    assert client.connectors() == []
    assert client.config("fluxa_default") is None
    assert client.put_config("fluxa_default", {"connector.class": "A"}) is True
    assert client.put_config("fluxa_default", {"connector.class": "B"}) is False
    assert client.config("fluxa_default") == {"connector.class": "B", "name": "fluxa_default"}
    assert client.connectors() == ["fluxa_default"]
    assert client.delete("fluxa_default") is True
    assert client.delete("fluxa_default") is False


def test_client_retries_while_connect_answers_409(connect: FakeConnect) -> None:
    connect.conflicts = 3
    client = ConnectClient(connect.url, conflict_timeout=10)
    assert client.put_config("fluxa_default", {"connector.class": "A"}) is True
    puts = [r for r in connect.requests if r[0] == "PUT"]
    assert len(puts) == 4


def test_client_gives_up_on_409_after_the_conflict_timeout(connect: FakeConnect) -> None:
    connect.conflicts = 1000
    client = ConnectClient(connect.url, conflict_timeout=0.3)
    with pytest.raises(PoolError, match="409: Cannot complete request"):
        client.delete("fluxa_default")


def test_client_error_body_is_reported_without_secrets(connect: FakeConnect) -> None:
    client = ConnectClient(connect.url, secrets=[PASSWORD])
    with pytest.raises(PoolError) as caught:
        client.put_config("fluxa_x", {"database.password": PASSWORD})
    message = str(caught.value)
    assert "-> 400: Connector config" in message and "contains no connector type" in message
    assert PASSWORD not in message and "***" in message


def test_client_sends_basic_auth_and_hides_it(connect: FakeConnect) -> None:
    url = connect.url.replace("http://", f"http://admin:{PASSWORD}@")
    client = ConnectClient(url)
    assert PASSWORD not in repr(client) and PASSWORD not in client.url
    client.connectors()
    auth = connect.requests[-1][2]
    assert auth == "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def test_client_unreachable_is_a_pool_error() -> None:
    client = ConnectClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(PoolError, match="failed"):
        client.connectors()


# -- fluxa_migrate -------------------------------------------------------------------------------


def test_plan_and_apply_connector(connect: FakeConnect, engines: list[Engine]) -> None:
    options = DebeziumOptions(hostname="mysql.internal", password=PASSWORD)
    engine = engine_for(engines, connect.url, DbzProduct, DbzCategory, DbzPlain, options=options)
    plan = plan_debezium(engine)
    assert [str(c) for c in plan.changes] == [
        f"[default] CREATE debezium connector 'fluxa_default' on {connect.url} "
        f"({MARIADB_CONNECTOR}; tables {DBZ_DATABASE}\\.DbzCategory,{DBZ_DATABASE}\\.DbzProduct)"
    ]
    assert apply_debezium(engine, plan.safe) == 1
    config = connect.connectors["fluxa_default"]
    assert config == {
        "name": "fluxa_default",
        "connector.class": MARIADB_CONNECTOR,
        "tasks.max": "1",
        "database.hostname": "mysql.internal",
        "database.port": str(MYSQL_PORT),
        "database.user": "root",
        "database.password": PASSWORD,
        "database.server.id": str(server_id("default")),
        "topic.prefix": "fluxa_default",
        "database.include.list": DBZ_DATABASE,  # (no regex character in it)
        "table.include.list": f"{DBZ_DATABASE}\\.DbzCategory,{DBZ_DATABASE}\\.DbzProduct",
        "include.schema.changes": "false",
        "decimal.handling.mode": "precise",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "schema.history.internal.kafka.bootstrap.servers": KAFKA_BROKER,
        "schema.history.internal.kafka.topic": "fluxa_default_schema_history",
    }
    assert plan_debezium(engine).changes == []


def test_changed_definition_updates_and_leftover_is_destructive(
    connect: FakeConnect, engines: list[Engine]
) -> None:
    engine = engine_for(engines, connect.url, DbzProduct, DbzCategory)
    apply_debezium(engine, plan_debezium(engine).changes)
    connect.connectors["fluxa_gone"] = {"connector.class": MYSQL_CONNECTOR}
    connect.connectors["someone_else"] = {"connector.class": MYSQL_CONNECTOR}
    options = DebeziumOptions(decimal_handling_mode="string", extra={"snapshot.mode": "never"})
    engine = engine_for(engines, connect.url, DbzCategory, options=options)
    plan = plan_debezium(engine)
    assert [str(c) for c in plan.safe] == [
        f"[default] UPDATE debezium connector 'fluxa_default' on {connect.url} (changed: "
        "decimal.handling.mode, snapshot.mode, table.include.list)"
    ]
    assert [str(c) for c in plan.destructive] == [
        f"[default] DELETE debezium connector 'fluxa_gone' on {connect.url}"
    ]
    connect.conflicts = 2  # a rebalance while applying
    apply_debezium(engine, plan.changes)
    assert sorted(connect.connectors) == ["fluxa_default", "someone_else"]
    assert connect.connectors["fluxa_default"]["snapshot.mode"] == "never"
    assert connect.connectors["fluxa_default"]["table.include.list"] == (
        f"{DBZ_DATABASE}\\.DbzCategory"  # a regex for Debezium: the dot matched literally
    )


def test_debezium_entity_without_connect_url(engines: list[Engine], dbz_database: str) -> None:
    registry = Registry()
    registry.register_mysql(f"root:@tcp({MYSQL_HOST}:{MYSQL_PORT})/{DBZ_DATABASE}")
    registry.register_redis(REDIS_ADDRESS, REDIS_TEST_DB)
    registry.register_kafka([KAFKA_BROKER], "default", KafkaPoolOptions())
    registry.register_entity(DbzCategory)
    engine = registry.validate()
    engines.append(engine)
    with pytest.raises(ConfigError, match="no register_debezium_connect_url"):
        plan_debezium(engine)


def test_fluxa_migrate_command(
    connect: FakeConnect, engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fluxa_django import conf

    engine = engine_for(
        engines, connect.url, DbzCategory, options=DebeziumOptions(password=PASSWORD)
    )
    connect.connectors["fluxa_old"] = {"connector.class": MYSQL_CONNECTOR}
    monkeypatch.setattr(conf, "get_engine", lambda: engine)
    out = io.StringIO()
    call_command("fluxa_migrate", "--plan", stdout=out)
    shown = out.getvalue()
    assert "Debezium connector changes (1):" in shown
    assert "CREATE debezium connector 'fluxa_default'" in shown
    assert "Debezium destructive changes (1):" in shown
    assert PASSWORD not in shown
    assert "fluxa_default" not in connect.connectors
    # applying without --allow-destructive: the leftover connector stays (tables too are
    # created in the throwaway database)
    out = io.StringIO()
    call_command("fluxa_migrate", "--noinput", stdout=out)
    assert PASSWORD not in out.getvalue()
    assert sorted(connect.connectors) == ["fluxa_default", "fluxa_old"]
    call_command("fluxa_migrate", "--noinput", "--allow-destructive", stdout=io.StringIO())
    assert sorted(connect.connectors) == ["fluxa_default"]


# -- topic names and the generated method --------------------------------------------------------


def test_topic_names(connect: FakeConnect, engines: list[Engine]) -> None:
    registry = registry_for(connect.url, DbzCategory, DbzPlain)
    expected = f"fluxa_default.{DBZ_DATABASE}.DbzCategory"
    assert debezium_topic_name(registry, DbzCategory) == expected
    engine = registry.validate()
    engines.append(engine)
    assert debezium_topic_name(engine, "DbzCategory") == expected
    assert debezium_topic_name(engine.new_context(), DbzCategory) == expected
    with pytest.raises(ConfigError, match="not streamed"):
        debezium_topic_name(engine, DbzPlain)


def test_generated_provider_has_debezium_topic_name(
    connect: FakeConnect, engines: list[Engine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = registry_for(connect.url, DbzCategory, DbzPlain)
    package = tmp_path / "dbz_generated"
    package.mkdir()
    for name, text in render_package(registry).items():
        (package / name).write_text(text)
    assert "debezium_topic_name" not in (package / "dbz_plain.py").read_text()
    ruff = [sys.executable, "-m", "ruff"]
    for args in (
        ["check", "--no-cache", str(package)],
        ["format", "--check", "--no-cache", str(package)],
    ):
        done = subprocess.run([*ruff, *args], cwd=REPO, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("dbz_generated")
    engine = registry.validate()
    engines.append(engine)
    provider = module.DbzCategoryProvider
    assert provider.debezium_pool == "default"
    assert provider.debezium_topic_name(engine.new_context()) == (
        f"fluxa_default.{DBZ_DATABASE}.DbzCategory"
    )


# -- change events ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def product_schema() -> EntitySchema:
    registry = Registry()
    registry.register_mysql(f"root:@tcp({MYSQL_HOST}:{MYSQL_PORT})/{DBZ_DATABASE}")
    registry.register_kafka([KAFKA_BROKER], "default", KafkaPoolOptions())
    registry.register_entity(DbzProduct, DbzCategory)
    return next(s for s in registry.build_schemas().values() if s.name == "DbzProduct")


SOURCE = {
    "version": "2.7.3.Final",
    "connector": "mariadb",
    "name": "fluxa_default",
    "ts_ms": 1700000000000,
    "snapshot": "false",
    "db": DBZ_DATABASE,
    "table": "DbzProduct",
    "server_id": 1,
    "gtid": None,
    "file": "mysql-bin.000003",
    "pos": 154,
    "row": 0,
    "thread": 7,
    "query": None,
}


def unscaled(value: int) -> str:
    """A DECIMAL as ``precise`` mode writes it in JSON: base64 big-endian two's complement."""
    length = max(1, (value.bit_length() + 8) // 8)
    return base64.b64encode(value.to_bytes(length, "big", signed=True)).decode()


def row(price: Any, **changes: Any) -> dict[str, Any]:
    values = {
        "id": 7,
        "name": "Lamp",
        "price": price,
        "weight": 1.5,
        "active": 1,
        "mood": "happy",
        "moods": "happy,sad",
        "born": 19723,  # io.debezium.time.Date: days since the epoch (2024-01-01)
        "seen": 1704164645123,  # io.debezium.time.Timestamp: millis (2024-01-02 03:04:05.123)
        "data": base64.b64encode(b"\x00\xffbin").decode(),
        "category": 3,
        "note": None,
    }
    values.update(changes)
    return values


TYPED = {
    "id": 7,
    "name": "Lamp",
    "price": 1234.5,
    "weight": 1.5,
    "active": True,
    "mood": Mood.HAPPY,
    "moods": {Mood.HAPPY, Mood.SAD},
    "born": datetime.date(2024, 1, 1),
    "seen": datetime.datetime(2024, 1, 2, 3, 4, 5, 123000),
    "data": b"\x00\xffbin",
    "category": 3,
    "note": None,
}


def envelope(op: str, before: Any, after: Any) -> dict[str, Any]:
    return {"before": before, "after": after, "source": SOURCE, "op": op, "ts_ms": 1700000000123}


@pytest.mark.parametrize(
    ("mode", "price"),
    [("precise", unscaled(123450)), ("string", "1234.50"), ("double", 1234.5)],
)
def test_parse_without_schemas_in_every_decimal_mode(
    product_schema: EntitySchema, mode: str, price: Any
) -> None:
    value = json.dumps(envelope("c", None, row(price))).encode()
    event = parse_debezium_event(value, product_schema, decimal_handling_mode=mode)
    assert event is not None
    assert event.op == "c" and event.before is None and event.after == TYPED
    assert event.id == 7 and event.entity == "DbzProduct"
    assert event.ts_ms == 1700000000123
    assert event.source.table == "DbzProduct" and event.source.pos == 154
    assert event.source.ts_ms == 1700000000000 and event.source.connector == "mariadb"


def test_negative_and_fractional_precise_decimals() -> None:
    assert decode_decimal(unscaled(-1), 2) == Decimal("-0.01")
    assert decode_decimal(unscaled(-123456), 3) == Decimal("-123.456")
    assert decode_decimal(unscaled(0), 2) == Decimal("0.00")
    assert decode_decimal("AeI=", 2) == Decimal("4.82")
    assert decode_decimal({"scale": 4, "value": unscaled(10)}, 0) == Decimal("0.0010")
    assert decode_decimal(12.5, 2) == Decimal("12.5")  # JsonConverter decimal.format=NUMERIC
    assert decode_decimal("12.50", 2, "string") == Decimal("12.50")


def field_schema(
    name: str, type_: str, logical: str | None = None, **params: str
) -> dict[str, Any]:
    found: dict[str, Any] = {"type": type_, "optional": True, "field": name}
    if logical:
        found["name"] = logical
    if params:
        found["parameters"] = params
    return found


def value_schema(price: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    fields = [
        field_schema("id", "int64"),
        field_schema("name", "string"),
        price,
        field_schema("weight", "double"),
        field_schema("active", "int16"),
        field_schema("mood", "string", "io.debezium.data.Enum", allowed="happy,sad"),
        field_schema("moods", "string", "io.debezium.data.EnumSet", allowed="happy,sad"),
        field_schema("born", "int32", "io.debezium.time.Date"),
        seen,
        field_schema("data", "bytes"),
        field_schema("category", "int64"),
        field_schema("note", "string"),
    ]
    image = {"type": "struct", "fields": fields, "optional": True, "name": "x.Value"}
    return {
        "type": "struct",
        "name": "x.Envelope",
        "fields": [
            {**image, "field": "before"},
            {**image, "field": "after"},
            {"type": "struct", "fields": [], "optional": False, "field": "source"},
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
        ],
    }


@pytest.mark.parametrize(
    ("price_schema", "price"),
    [
        (
            field_schema(
                "price",
                "bytes",
                "org.apache.kafka.connect.data.Decimal",
                scale="2",
                **{"connect.decimal.precision": "10"},
            ),
            unscaled(123450),
        ),
        (field_schema("price", "string"), "1234.50"),
        (field_schema("price", "double"), 1234.5),
    ],
    ids=["precise", "string", "double"],
)
@pytest.mark.parametrize(
    ("seen_schema", "seen"),
    [
        (field_schema("seen", "int64", "io.debezium.time.Timestamp"), 1704164645123),
        (field_schema("seen", "int64", "io.debezium.time.MicroTimestamp"), 1704164645123000),
        (
            field_schema("seen", "string", "io.debezium.time.ZonedTimestamp"),
            "2024-01-02T03:04:05.123Z",
        ),
    ],
    ids=["millis", "micros", "zoned"],
)
def test_parse_with_schemas(
    product_schema: EntitySchema,
    price_schema: dict[str, Any],
    price: Any,
    seen_schema: dict[str, Any],
    seen: Any,
) -> None:
    before = row(price, seen=seen, name="Old", category=0)
    after = row(price, seen=seen)
    message = {
        "schema": value_schema(price_schema, seen_schema),
        "payload": envelope("u", before, after),
    }
    # the schemas decide, whatever mode the caller assumed
    event = parse_debezium_event(
        json.dumps(message), product_schema, decimal_handling_mode="precise"
    )
    assert event is not None and event.op == "u"
    assert event.after == TYPED
    assert event.before == {**TYPED, "name": "Old", "category": None}


def test_delete_read_tombstone_and_key(product_schema: EntitySchema) -> None:
    deleted = parse_debezium_event(
        json.dumps(envelope("d", row(unscaled(1)), None)), product_schema
    )
    assert deleted is not None and deleted.op == "d" and deleted.after is None
    assert deleted.id == 7 and deleted.before is not None and deleted.before["price"] == 0.01
    read = parse_debezium_event(
        envelope("r", None, row(unscaled(1))) | {"source": {**SOURCE, "snapshot": "true"}},
        product_schema,
    )
    assert read is not None and read.op == "r" and read.source.snapshot == "true"
    assert parse_debezium_event(None, product_schema) is None
    assert parse_debezium_event(b"", product_schema) is None
    assert (
        parse_debezium_event(json.dumps({"schema": None, "payload": None}), product_schema) is None
    )
    assert parse_debezium_key(b'{"id": 7}') == 7
    assert parse_debezium_key(json.dumps({"schema": {"type": "struct"}, "payload": {"id": 8}})) == 8
    untyped = parse_debezium_event(json.dumps(envelope("c", None, row("AeI="))))
    assert untyped is not None and untyped.after is not None and untyped.after["price"] == "AeI="


def test_malformed_events_are_refused(product_schema: EntitySchema) -> None:
    with pytest.raises(DebeziumEventError, match="not JSON"):
        parse_debezium_event(b"{nope", product_schema)
    with pytest.raises(DebeziumEventError, match="no op"):
        parse_debezium_event(b'{"after": {}}', product_schema)
    with pytest.raises(DebeziumEventError, match="unexpected op 't'"):
        parse_debezium_event(json.dumps(envelope("t", None, None)), product_schema)
    other = envelope("c", None, row(unscaled(1))) | {"source": {**SOURCE, "table": "Other"}}
    with pytest.raises(DebeziumEventError, match="table 'Other'"):
        parse_debezium_event(other, product_schema)
    with pytest.raises(DebeziumEventError, match=r"DbzProduct\.price"):
        parse_debezium_event(json.dumps(envelope("c", None, row("12.50"))), product_schema)
    with pytest.raises(DebeziumEventError, match="no column 'note'"):
        bad = row(unscaled(1))
        del bad["note"]
        parse_debezium_event(json.dumps(envelope("c", None, bad)), product_schema)


# -- consuming through Tansu ---------------------------------------------------------------------


def test_debezium_consumer_yields_typed_events_from_the_broker(
    connect: FakeConnect, engines: list[Engine]
) -> None:
    """What a connector would write to the entity's topic (created here on the real Tansu,
    as Connect cannot run on this machine) comes out of ``DebeziumConsumer`` as typed
    events, tombstones left out, and committed offsets are where a new member resumes."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    from fluxa_django import KafkaConsumerGroup
    from fluxa_django.debezium import DebeziumConsumer

    registry = registry_for(connect.url, DbzCategory)
    topic = debezium_topic_name(registry, DbzCategory)
    group = f"{DBZ_DATABASE}.dbz-consumer"
    registry.register_kafka_consumer_group(KafkaConsumerGroup(group, "default").topics(topic))
    engine = registry.validate()
    engines.append(engine)
    admin = AdminClient({"bootstrap.servers": KAFKA_BROKER})
    admin.delete_topics([topic])  # a leftover of an interrupted run
    admin.delete_consumer_groups([group])
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(10)
    try:
        pool = engine.kafka("default")
        source = {**SOURCE, "table": "DbzCategory"}
        created = {
            "before": None,
            "after": {"id": 5, "name": "Books"},
            "source": source,
            "op": "c",
            "ts_ms": 1700000000200,
        }
        updated = {
            "before": {"id": 5, "name": "Books"},
            "after": {"id": 5, "name": "Novels"},
            "source": source,
            "op": "u",
            "ts_ms": 1700000000300,
        }
        deleted = {
            "before": {"id": 5, "name": "Novels"},
            "after": None,
            "source": source,
            "op": "d",
            "ts_ms": 1700000000400,
        }
        for value in (created, updated, deleted):
            pool.produce_sync(topic, json.dumps(value), key=json.dumps({"id": 5}))
        pool.produce_sync(topic, None, key=json.dumps({"id": 5}))  # the delete's tombstone
        config = {"session.timeout.ms": 3000}
        with DebeziumConsumer(engine, group, [DbzCategory], config=config) as consumer:
            events = list(consumer.events(idle_timeout=2))
            assert [(e.op, e.id) for e in events] == [("c", 5), ("u", 5), ("d", 5)]
            assert events[0].after == {"id": 5, "name": "Books"} and events[0].before is None
            assert events[1].before == {"id": 5, "name": "Books"}
            assert events[1].after == {"id": 5, "name": "Novels"}
            assert events[2].after is None and events[2].source.table == "DbzCategory"
            consumer.commit(events[:2])
        with DebeziumConsumer(engine, group, [DbzCategory], config=config) as again:
            rest = list(again.events(idle_timeout=2))
            assert [(e.op, e.offset) for e in rest] == [("d", 2)]  # resumed after the commit
    finally:
        admin.delete_topics([topic])
        admin.delete_consumer_groups([group])
