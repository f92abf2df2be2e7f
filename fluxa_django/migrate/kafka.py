"""Kafka topics and consumer groups in ``fluxa_migrate``: what to change, and changing it.

The definitions are the registered ``KafkaTopic``s, the registered ``KafkaConsumerGroup``s
and, with ``register_async_flush``, the topics ``_fluxa_async_sql`` and
``_fluxa_async_sql_failed`` and the group ``_fluxa_async_sql``. Per pool:

- a defined topic missing on the broker is created (partitions, replication factor,
  configs);
- a config that differs is set (``IncrementalAlterConfigs``); a config set on the topic
  (``DYNAMIC_TOPIC_CONFIG``) that the definition no longer names goes back to the broker's
  default. A change that can delete records (a lower ``retention.ms``/``retention.bytes``,
  another ``cleanup.policy``, resetting either) is destructive;
- more partitions than the broker has are added when the broker can do it (asked with
  ``CreatePartitions`` in validate-only mode while planning); otherwise, and for fewer
  partitions or another replication factor (which Kafka cannot change in place), the
  change is *held back*: listed with the reason, never applied;
- with at least one topic (group) defined on the pool, a topic (group) that no
  definition owns is deleted, a destructive change: never a topic whose name starts
  with ``__`` (the broker's own), never a name matching ``ignored_topics`` /
  ``ignored_consumer_groups`` (names or ``fnmatch`` patterns), never a group that has
  members (held back). A pool without topic (group) definitions is not managed.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, not in __all__
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from fluxa_django.backends.kafka import describe_error
from fluxa_django.errors import PoolError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from fluxa_django.backends.kafka import KafkaPool
    from fluxa_django.config import KafkaTopic
    from fluxa_django.engine import Engine

_RANK = {
    "create_topic": 0,
    "alter_config": 10,
    "add_partitions": 20,
    "delete_group": 40,
    "delete_topic": 50,
    "held_back": 99,
}
# Configs whose change can delete records.
_RETENTION = ("retention.ms", "retention.bytes")
_IDLE_GROUP_STATES = {ConsumerGroupState.EMPTY, ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN}


@dataclass(frozen=True)
class KafkaChange:
    """One change to one Kafka pool's topics or groups (or a change held back)."""

    pool: str
    kind: str  # create_topic, alter_config, add_partitions, delete_topic, delete_group, held_back
    name: str  # the topic or group
    description: str
    destructive: bool = False
    reason: str = ""  # why a held-back change is not made, or why a change is destructive
    partitions: int = 0
    replication: int = 0
    configs: tuple[tuple[str, str], ...] = ()  # create: all; alter: the one to set
    reset: str = ""  # alter: the config to put back to the broker's default

    @property
    def rank(self) -> int:
        return _RANK[self.kind]

    @property
    def held_back(self) -> bool:
        return self.kind == "held_back"

    def __str__(self) -> str:
        reason = f" -- {self.reason}" if self.reason else ""
        return f"[{self.pool}] {self.description}{reason}"


@dataclass
class KafkaPlan:
    changes: list[KafkaChange] = field(default_factory=list)

    @property
    def safe(self) -> list[KafkaChange]:
        return [c for c in self.changes if not c.destructive and not c.held_back]

    @property
    def destructive(self) -> list[KafkaChange]:
        return [c for c in self.changes if c.destructive and not c.held_back]

    @property
    def held_back(self) -> list[KafkaChange]:
        return [c for c in self.changes if c.held_back]


def ignored(name: str, patterns: Iterable[str]) -> bool:
    """True when ``name`` is one of ``patterns`` or matches one (``fnmatch``)."""
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def plan_kafka(engine: Engine, pools: Iterable[str] | None = None) -> KafkaPlan:
    """Compare the topic and group definitions with the brokers of each Kafka pool."""
    registry = engine.registry
    topics = registry.kafka_topic_definitions()
    groups = registry.kafka_group_definitions()
    # Names any pool defines are owned: two pools on one cluster never delete each
    # other's topics or groups.
    owned_topics = {name for _pool, name in topics}
    owned_groups = set(groups)
    plan = KafkaPlan()
    wanted = set(pools) if pools is not None else set(registry.kafka_pools)
    for code in sorted(wanted):
        mine = sorted((t for (p, _n), t in topics.items() if p == code), key=lambda t: t.name)
        my_groups = sorted(name for name, g in groups.items() if g.pool == code)
        if not mine and not my_groups:
            continue  # no definitions: the pool is not managed
        pool = engine.kafka(code)
        admin = pool.admin()
        timeout = pool.options.request_timeout
        try:
            metadata = admin.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise pool._error(f"cannot read the topics: {describe_error(exc)}") from None
        live = {name: t for name, t in metadata.topics.items() if t.error is None}
        if mine:
            plan.changes.extend(_topic_changes(pool, admin, mine, live))
            plan.changes.extend(_unowned_topics(pool, live, owned_topics))
        if my_groups:
            plan.changes.extend(_unowned_groups(pool, admin, owned_groups))
    plan.changes.sort(key=lambda c: (c.pool, c.rank, c.name))
    return plan


def _topic_changes(
    pool: KafkaPool, admin: AdminClient, topics: list[KafkaTopic], live: dict[str, Any]
) -> list[KafkaChange]:
    code = pool.code
    changes: list[KafkaChange] = []
    existing = [t for t in topics if t.name in live]
    for topic in topics:
        if topic.name in live:
            continue
        rf = "the broker's default" if topic.replication == -1 else str(topic.replication)
        configs = tuple(sorted(topic.configs.items()))
        shown = "".join(f", {k}={v}" for k, v in configs)
        changes.append(
            KafkaChange(
                code,
                "create_topic",
                topic.name,
                f"create topic {topic.name} ({topic.partition_count} partition(s), "
                f"replication factor {rf}{shown})",
                partitions=topic.partition_count,
                replication=topic.replication,
                configs=configs,
            )
        )
    current = _describe_configs(pool, admin, [t.name for t in existing])
    for topic in existing:
        partitions = live[topic.name].partitions
        have = len(partitions)
        if topic.partition_count > have:
            changes.append(_more_partitions(pool, admin, topic, have))
        elif topic.partition_count < have:
            changes.append(
                KafkaChange(
                    code,
                    "held_back",
                    topic.name,
                    f"topic {topic.name}: partitions {have} -> {topic.partition_count}",
                    reason="Kafka cannot remove partitions (recreate the topic to have fewer)",
                )
            )
        replicas = {len(p.replicas) for p in partitions.values()}
        if topic.replication != -1 and replicas and replicas != {topic.replication}:
            changes.append(
                KafkaChange(
                    code,
                    "held_back",
                    topic.name,
                    f"topic {topic.name}: replication factor {max(replicas)} -> "
                    f"{topic.replication}",
                    reason="changing the replication factor needs a partition reassignment "
                    "(kafka-reassign-partitions), which fluxa_migrate does not do",
                )
            )
        changes.extend(_config_changes(code, topic, current.get(topic.name, {})))
    return changes


def _describe_configs(
    pool: KafkaPool, admin: AdminClient, names: list[str]
) -> dict[str, dict[str, Any]]:
    if not names:
        return {}
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, name) for name in names],
        request_timeout=pool.options.request_timeout,
    )
    out: dict[str, dict[str, Any]] = {}
    for resource, future in futures.items():
        try:
            out[resource.name] = future.result(pool.options.request_timeout + 1)
        except KafkaException as exc:
            raise pool._error(
                f"cannot read the configs of {resource.name}: {describe_error(exc)}"
            ) from None
    return out


def _config_changes(code: str, topic: KafkaTopic, current: dict[str, Any]) -> list[KafkaChange]:
    changes: list[KafkaChange] = []
    for key, value in sorted(topic.configs.items()):
        entry = current.get(key)
        old = None if entry is None else entry.value
        if old == value:
            continue
        reason = _loses_records(key, old, value)
        changes.append(
            KafkaChange(
                code,
                "alter_config",
                topic.name,
                f"topic {topic.name}: {key} {'(not set)' if old is None else old} -> {value}",
                destructive=bool(reason),
                reason=reason,
                configs=((key, value),),
            )
        )
    for key, entry in sorted(current.items()):
        if key in topic.configs or _source(entry) != ConfigSource.DYNAMIC_TOPIC_CONFIG.value:
            continue
        reason = "records may be deleted" if key in (*_RETENTION, "cleanup.policy") else ""
        changes.append(
            KafkaChange(
                code,
                "alter_config",
                topic.name,
                f"topic {topic.name}: {key} {entry.value} -> the broker's default "
                "(no longer in the definition)",
                destructive=bool(reason),
                reason=reason,
                reset=key,
            )
        )
    return changes


def _source(entry: Any) -> int:
    source = entry.source
    return int(source.value if hasattr(source, "value") else source)


def _loses_records(key: str, old: str | None, new: str) -> str:
    """Why changing ``key`` from ``old`` to ``new`` can delete records ("" when it cannot)."""
    if old is None:
        return "records may be deleted" if key in (*_RETENTION, "cleanup.policy") else ""
    if key in _RETENTION:
        try:
            before, after = int(old), int(new)
        except ValueError:
            return "records may be deleted"
        unbounded = -1
        if after != unbounded and (before == unbounded or after < before):
            return "records older/beyond the new limit are deleted"
        return ""
    if key == "cleanup.policy" and set(old.split(",")) != set(new.split(",")):
        return "another cleanup policy deletes records the old one kept"
    return ""


def _more_partitions(
    pool: KafkaPool, admin: AdminClient, topic: KafkaTopic, have: int
) -> KafkaChange:
    """Add partitions when the broker can (asked in validate-only mode), else hold back."""
    description = f"topic {topic.name}: partitions {have} -> {topic.partition_count}"
    futures = admin.create_partitions(
        [NewPartitions(topic.name, topic.partition_count)],
        validate_only=True,
        request_timeout=pool.options.request_timeout,
    )
    try:
        for future in futures.values():
            future.result(pool.options.request_timeout + 1)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() == KafkaError._UNSUPPORTED_FEATURE:
            reason = "the broker does not support adding partitions (CreatePartitions)"
        else:
            reason = f"the broker refuses: {describe_error(exc)}"
        return KafkaChange(pool.code, "held_back", topic.name, description, reason=reason)
    return KafkaChange(
        pool.code,
        "add_partitions",
        topic.name,
        description,
        reason="records of a key produced from now on may go to another partition than "
        "its earlier ones",
        partitions=topic.partition_count,
    )


def _unowned_topics(pool: KafkaPool, live: dict[str, Any], owned: set[str]) -> list[KafkaChange]:
    changes = []
    for name in sorted(live):
        if name in owned or name.startswith("__") or ignored(name, pool.options.ignored_topics):
            continue
        changes.append(
            KafkaChange(
                pool.code,
                "delete_topic",
                name,
                f"delete topic {name}",
                destructive=True,
                reason="no definition owns it; its records are lost",
            )
        )
    return changes


def _unowned_groups(pool: KafkaPool, admin: AdminClient, owned: set[str]) -> list[KafkaChange]:
    timeout = pool.options.request_timeout
    try:
        listed = admin.list_consumer_groups(request_timeout=timeout).result(timeout + 1)
    except KafkaException as exc:
        raise pool._error(f"cannot list the consumer groups: {describe_error(exc)}") from None
    names = sorted(
        g.group_id
        for g in listed.valid
        if g.group_id not in owned
        and not g.group_id.startswith("__")
        and not ignored(g.group_id, pool.options.ignored_consumer_groups)
    )
    if not names:
        return []
    states: dict[str, Any] = {}
    for name, future in admin.describe_consumer_groups(names, request_timeout=timeout).items():
        try:
            description = future.result(timeout + 1)
        except KafkaException as exc:
            raise pool._error(
                f"cannot describe consumer group {name}: {describe_error(exc)}"
            ) from None
        states[name] = description.state
    changes = []
    for name in names:
        state = states.get(name, ConsumerGroupState.UNKNOWN)
        if state not in _IDLE_GROUP_STATES:
            changes.append(
                KafkaChange(
                    pool.code,
                    "held_back",
                    name,
                    f"delete consumer group {name}",
                    reason=f"no definition owns it, but it has members (state {state.name})",
                )
            )
            continue
        changes.append(
            KafkaChange(
                pool.code,
                "delete_group",
                name,
                f"delete consumer group {name}",
                destructive=True,
                reason="no definition owns it; its committed offsets are lost",
            )
        )
    return changes


def apply_kafka(
    engine: Engine,
    changes: list[KafkaChange],
    progress: Callable[[int, int, KafkaChange], None] | None = None,
) -> int:
    """Make each change (held-back ones are skipped); returns how many were made."""
    todo = sorted((c for c in changes if not c.held_back), key=lambda c: (c.pool, c.rank, c.name))
    admins: dict[str, AdminClient] = {}
    for number, change in enumerate(todo, 1):
        if progress is not None:
            progress(number, len(todo), change)
        pool = engine.kafka(change.pool)
        admin = admins.get(change.pool)
        if admin is None:
            admin = admins[change.pool] = pool.admin()
        try:
            _apply(pool, admin, change)
        except KafkaException as exc:
            raise pool._error(f"{change.description}: {describe_error(exc)}") from None
    return len(todo)


def _apply(pool: KafkaPool, admin: AdminClient, change: KafkaChange) -> None:
    timeout = pool.options.request_timeout
    kind = change.kind
    if kind == "create_topic":
        new = NewTopic(
            change.name,
            num_partitions=change.partitions,
            replication_factor=change.replication,
            config=dict(change.configs),
        )
        futures = admin.create_topics([new], operation_timeout=timeout, request_timeout=timeout)
        try:
            _wait(futures, timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                raise  # created meanwhile (another process migrating): nothing left to do
        _ready(admin, change.name, change.partitions, timeout)
    elif kind == "alter_config":
        if change.reset:
            entries = [
                ConfigEntry(change.reset, None, incremental_operation=AlterConfigOpType.DELETE)
            ]
        else:
            entries = [
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in change.configs
            ]
        resource = ConfigResource(ResourceType.TOPIC, change.name, incremental_configs=entries)
        _wait(admin.incremental_alter_configs([resource], request_timeout=timeout), timeout)
    elif kind == "add_partitions":
        _wait(
            admin.create_partitions(
                [NewPartitions(change.name, change.partitions)],
                operation_timeout=timeout,
                request_timeout=timeout,
            ),
            timeout,
        )
    elif kind == "delete_topic":
        _wait(
            admin.delete_topics([change.name], operation_timeout=timeout, request_timeout=timeout),
            timeout,
        )
    elif kind == "delete_group":
        _wait(admin.delete_consumer_groups([change.name], request_timeout=timeout), timeout)
    else:  # pragma: no cover - held-back changes never reach here
        raise PoolError(f"kafka pool {pool.code!r}: unknown change {kind}", pool=pool.code)


def _ready(admin: AdminClient, topic: str, partitions: int, timeout: float) -> None:
    """Wait (at most ``timeout``) until the brokers' metadata show the new topic with a
    leader for each partition: a produce right after ``fluxa_migrate`` then succeeds
    (some brokers answer one with an error while the topic is still being set up)."""
    deadline = time.monotonic() + timeout
    while True:
        found = admin.list_topics(topic, timeout=timeout).topics.get(topic)
        if (
            found is not None
            and found.error is None
            and len(found.partitions) >= partitions
            and all(p.leader >= 0 and p.error is None for p in found.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            return  # the produce will report what is wrong
        time.sleep(0.05)


def _wait(futures: dict[Any, Any], timeout: float) -> None:
    for future in futures.values():
        future.result(timeout + 1)
