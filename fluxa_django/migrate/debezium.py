"""Debezium connectors in ``fluxa_migrate``: what to change, and changing it.

For every Kafka pool with a Connect URL (``register_debezium_connect_url``), the entities
whose ``Meta.debezium`` names that pool are grouped by MySQL pool; each group needs the
connector ``fluxa_<mysql pool>`` with the config ``connector_config`` builds (the MariaDB
connector class when the pool's ``VERSION()`` names MariaDB). Then:

- a missing connector is created (``PUT /connectors/<name>/config``);
- a connector whose config differs in a key the definition sets is updated (the same
  request; keys Connect or an operator added are kept as they are compared, not removed);
- a ``fluxa_*`` connector that no group needs any more is deleted
  (``DELETE /connectors/<name>``): destructive.

Every request retries while Connect answers 409 (a rebalance). Passwords are never shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fluxa_django.config import DebeziumOptions
from fluxa_django.debezium import (
    CONNECTOR_PREFIX,
    SECRET_KEYS,
    ConnectClient,
    connector_config,
    connector_name,
)
from fluxa_django.errors import ConfigError

if TYPE_CHECKING:
    from fluxa_django.engine import Engine

_RANK = {"create": 0, "update": 1, "delete": 2}


@dataclass(frozen=True)
class DebeziumChange:
    """Create, update or delete one connector on one Kafka Connect."""

    kafka_pool: str
    kind: str  # create, update, delete
    connector: str
    url: str  # without credentials
    config: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    changed: tuple[str, ...] = ()  # update: the keys that differ

    @property
    def destructive(self) -> bool:
        return self.kind == "delete"

    @property
    def description(self) -> str:
        what = f"{self.kind.upper()} debezium connector {self.connector!r} on {self.url}"
        if self.kind == "create":
            tables = self.config.get("table.include.list", "")
            return f"{what} ({self.config.get('connector.class')}; tables {tables})"
        if self.kind == "update":
            return f"{what} (changed: {', '.join(self.changed)})"
        return what

    def __str__(self) -> str:
        return f"[{self.kafka_pool}] {self.description}"


@dataclass
class DebeziumPlan:
    changes: list[DebeziumChange] = field(default_factory=list)

    @property
    def safe(self) -> list[DebeziumChange]:
        return [c for c in self.changes if not c.destructive]

    @property
    def destructive(self) -> list[DebeziumChange]:
        return [c for c in self.changes if c.destructive]


def _client(engine: Engine, kafka_pool: str) -> ConnectClient:
    registry = engine.registry
    options = registry.debezium_options.get(kafka_pool) or DebeziumOptions()
    secrets = [options.password or ""]
    secrets += [p.uri.password for p in registry.mysql_pools.values()]
    return ConnectClient(
        registry.debezium_connect_urls[kafka_pool],
        timeout=options.request_timeout,
        conflict_timeout=options.conflict_timeout,
        secrets=secrets,
        pool=kafka_pool,
    )


def desired_connectors(engine: Engine) -> dict[str, dict[str, dict[str, str]]]:
    """``{kafka pool: {connector name: config}}`` of the registered entities."""
    registry = engine.registry
    tables: dict[tuple[str, str], set[str]] = {}
    for schema in engine.schemas.values():
        if schema.debezium is None:
            continue
        if schema.debezium not in registry.debezium_connect_urls:
            raise ConfigError(
                f"entity {schema.name} has Meta.debezium on kafka pool {schema.debezium!r}, "
                "which has no register_debezium_connect_url"
            )
        tables.setdefault((schema.debezium, schema.mysql_pool), set()).add(schema.table)
    wanted: dict[str, dict[str, dict[str, str]]] = {p: {} for p in registry.debezium_connect_urls}
    versions: dict[str, str] = {}
    for (kafka_pool, mysql_pool), names in sorted(tables.items()):
        if mysql_pool not in versions:
            versions[mysql_pool] = str(engine.mysql(mysql_pool).query("SELECT VERSION()")[0][0])
        wanted[kafka_pool][connector_name(mysql_pool)] = connector_config(
            registry, mysql_pool, kafka_pool, names, versions[mysql_pool]
        )
    return wanted


def _differs(key: str, want: str, have: str | None) -> bool:
    if have is None:
        return True
    if key in SECRET_KEYS and have.startswith("[hidden"):  # masked by Connect: unknown
        return False
    return want != have


def plan_debezium(engine: Engine) -> DebeziumPlan:
    """Compare the wanted connectors with what each Kafka Connect has."""
    plan = DebeziumPlan()
    for kafka_pool, connectors in desired_connectors(engine).items():
        client = _client(engine, kafka_pool)
        existing = set(client.connectors())
        for name, config in sorted(connectors.items()):
            current = client.config(name) if name in existing else None
            if current is None:
                plan.changes.append(DebeziumChange(kafka_pool, "create", name, client.url, config))
                continue
            changed = tuple(k for k, v in sorted(config.items()) if _differs(k, v, current.get(k)))
            if changed:
                plan.changes.append(
                    DebeziumChange(kafka_pool, "update", name, client.url, config, changed)
                )
        for name in sorted(existing - set(connectors)):
            if name.startswith(CONNECTOR_PREFIX):
                plan.changes.append(DebeziumChange(kafka_pool, "delete", name, client.url))
    plan.changes.sort(key=lambda c: (c.kafka_pool, _RANK[c.kind], c.connector))
    return plan


def apply_debezium(
    engine: Engine,
    changes: list[DebeziumChange],
    progress: Callable[[int, int, DebeziumChange], None] | None = None,
) -> int:
    """Make ``changes``; returns how many were made."""
    clients: dict[str, ConnectClient] = {}
    for number, change in enumerate(changes, 1):
        if progress is not None:
            progress(number, len(changes), change)
        client = clients.get(change.kafka_pool)
        if client is None:
            client = clients[change.kafka_pool] = _client(engine, change.kafka_pool)
        if change.kind == "delete":
            client.delete(change.connector)
        else:
            client.put_config(change.connector, change.config)
    return len(changes)
