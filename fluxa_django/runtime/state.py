"""The runtime's own state per engine: what each entity type is bound to.

The ``Engine`` is immutable (pools and schemas). Everything the runtime builds
on top of it for one process lives here, owned by ``EngineState``:

- one ``Binding`` per entity type: its MySQL pool, the ``RowSource`` that
  reads its rows by id, its cache ``Tiers`` (``None`` when it has none) and
  its ``IdAllocator`` (made on the first ``new()``);
- one ``InvalidationBus`` (local-cache invalidation listener) per Redis pool.

``state_of(engine)`` finds (or makes) the state of an engine; a ``Context``
looks it up once when it is created. ``Engine.close()`` calls ``release`` to
stop the listeners.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from fluxa_django.errors import ConfigError
from fluxa_django.runtime import namespace
from fluxa_django.runtime.mysql import RowSource

if TYPE_CHECKING:
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.engine import Engine
    from fluxa_django.runtime.ids import IdAllocator
    from fluxa_django.runtime.invalidation import InvalidationBus
    from fluxa_django.runtime.provider import ProviderBase
    from fluxa_django.runtime.search_index import SearchIndex
    from fluxa_django.runtime.tiers import Tiers


class Binding:
    """One entity type on one engine."""

    __slots__ = ("_ids", "_state", "entity", "id_max", "pool", "rows", "search", "table", "tiers")

    def __init__(self, state: EngineState, provider: ProviderBase[Any]) -> None:
        engine = state.engine
        schema = engine.registered(provider.entity_name)
        if schema is not None and provider.schema_stamp and schema.stamp() != provider.schema_stamp:
            raise ConfigError(
                f"{provider.entity_name}: the generated code does not match the entity's "
                "definition (it changed after the code was generated): run "
                "`manage.py fluxa_generate` (or fluxa_django.generate())"
            )
        self._state = state
        self.entity = provider.entity_name
        self.table = provider.table
        self.id_max = provider.id_max
        self.pool: MySQLPool = engine.mysql(provider.mysql_pool)
        self.rows = RowSource(
            self.pool, provider.entity_name, provider.table, provider.select_sql, provider.by_id_sql
        )
        self.tiers: Tiers | None = None
        if provider.cached or provider.cached_uniques:
            self.tiers = state.tiers_for(provider, self.pool, self.rows)
        self.search: SearchIndex | None = None
        if provider.search_pool is not None:
            self.search = state.search_for(provider, self.pool)
        self._ids: IdAllocator | None = None

    def __repr__(self) -> str:
        return f"<Binding {self.entity} pool={self.pool.code!r} tiers={self.tiers is not None}>"

    def ids(self) -> IdAllocator:
        """The id allocator of this entity type (made on first use)."""
        allocator = self._ids
        if allocator is None:
            from fluxa_django.runtime.ids import IdAllocator

            allocator = self._ids = IdAllocator(self.entity, self.table, self.pool, self.id_max)
        return allocator

    def forget_ids(self) -> None:
        """Drop the reserved id block (as a new process would start)."""
        self._ids = None


class EngineState:
    """The runtime state of one engine in this process (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.app_name = str(engine.option("app_name") or "")  # part of every namespace
        self.bindings: dict[str, Binding] = {}
        self.buses: dict[str, InvalidationBus] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<EngineState bindings={sorted(self.bindings)} buses={sorted(self.buses)}>"

    def bind(self, provider: ProviderBase[Any]) -> Binding:
        """The binding of ``provider``'s entity type (made on first use)."""
        try:
            return self.bindings[provider.kind]
        except KeyError:
            pass
        with self._lock:
            binding = self.bindings.get(provider.kind)
            if binding is None:
                binding = self.bindings[provider.kind] = Binding(self, provider)
        return binding

    def forget_ids(self) -> None:
        """Drop every reserved id block (as a new process would start)."""
        for binding in list(self.bindings.values()):
            binding.forget_ids()

    def tiers_for(self, provider: ProviderBase[Any], pool: MySQLPool, rows: RowSource) -> Tiers:
        from fluxa_django.runtime.tiers import Tiers

        engine = self.engine
        code = provider.redis_pool
        if code not in engine.redis_pools:
            raise ConfigError(
                f"entity {provider.entity_name}: its cache tiers need Redis pool {code!r}, "
                "which is not registered"
            )
        local = engine.local_cache(provider.local_pool) if provider.local_pool else None
        prefix = namespace.key_prefix(
            namespace.database_identity(pool), pool.database, provider.table, self.app_name
        )
        return Tiers(
            entity=provider.entity_name,
            prefix=prefix,
            stamp=provider.cache_stamp,
            width=len(provider.default_row),
            row_cache=provider.row_cache,
            mysql=pool,
            rows=rows,
            redis_pool=engine.redis(code),
            local=local,
            bus=self.bus(code) if local is not None else None,
        )

    def search_for(self, provider: ProviderBase[Any], pool: MySQLPool) -> SearchIndex:
        from fluxa_django.runtime.search_index import SearchIndex

        code = provider.search_pool
        assert code is not None
        if code not in self.engine.redis_pools:
            raise ConfigError(
                f"entity {provider.entity_name}: its Redis Search index needs Redis pool "
                f"{code!r}, which is not registered"
            )
        return SearchIndex(
            entity=provider.entity_name,
            table=provider.table,
            spec=provider.search_spec,
            redis_pool=self.engine.redis(code),
            mysql=pool,
            identity=namespace.database_identity(pool),
            app_name=self.app_name,
            columns_sql=provider.select_sql.removeprefix("SELECT ").split(" FROM ")[0],
            fake_delete="fake_delete" if provider.fake_delete_sql else None,
        )

    def bus(self, code: str) -> InvalidationBus:
        """The local-cache invalidation channel on Redis pool ``code`` (one per process)."""
        bus = self.buses.get(code)
        if bus is None:
            from fluxa_django.runtime.invalidation import InvalidationBus

            engine = self.engine
            bus = self.buses[code] = InvalidationBus(
                engine.redis(code),
                dict(engine.local_cache_pools),
                self.app_name,
            )
        return bus

    def close(self) -> None:
        for bus in self.buses.values():
            bus.stop()


_states: weakref.WeakKeyDictionary[Engine, EngineState] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def state_of(engine: Engine) -> EngineState:
    """The runtime state of ``engine`` (made on first use)."""
    try:
        return _states[engine]
    except KeyError:
        pass
    with _states_lock:
        state = _states.get(engine)
        if state is None:
            state = _states[engine] = EngineState(engine)
    return state


def release(engine: Engine) -> None:
    """Stop what the runtime runs for ``engine`` and forget its state."""
    with _states_lock:
        state = _states.pop(engine, None)
    if state is not None:
        state.close()
