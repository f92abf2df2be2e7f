"""``ProviderBase``: the behaviour every generated provider shares.

Generated subclasses write out everything entity-specific as class attributes
(SQL strings, column lists, the default row, field references) plus typed
wrappers; this base only runs them. No per-field metadata is walked here.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, cast

from fluxa_django.errors import EntityNotFound
from fluxa_django.runtime.context import _MISSING, Context
from fluxa_django.runtime.entity import EntityBase
from fluxa_django.runtime.query import Column, Condition, Pager, Query, Unfiltered, Where
from fluxa_django.runtime.search import RedisSearchQuery

if TYPE_CHECKING:
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.engine import Engine
    from fluxa_django.runtime.search_index import SearchIndex, SearchSpec
    from fluxa_django.runtime.state import Binding
    from fluxa_django.runtime.tiers import Tiers

E = TypeVar("E", bound=EntityBase)
SEARCH_WINDOW = 10_000  # RediSearch's MAXSEARCHRESULTS: pages beyond go through a cursor
_ID: Column[int] = Column("id")
InsertHook = Callable[[Context, Any], None]
UpdateHook = Callable[[Context, Any, dict[str, Any]], None]


# The provider singletons of the generated modules imported in this process, by entity
# name (several when two generated packages define one name): ``imported_provider``.
_IMPORTED: dict[str, list[ProviderBase[Any]]] = {}


def imported_provider(entity: str, table: str, stamp: str) -> ProviderBase[Any] | None:
    """The imported provider of ``entity`` on ``table`` generated from the definition
    with ``stamp`` (the newest when a module was imported again), or ``None`` when no
    generated module holding it was imported."""
    found = [p for p in _IMPORTED.get(entity, []) if p.table == table and p.schema_stamp == stamp]
    return found[-1] if found else None


class ProviderBase(Generic[E]):
    """Reads, searches and creates one entity type. One instance per entity (a singleton)."""

    # -- written out by the generator -------------------------------------------
    entity_class: ClassVar[type[Any]]
    entity_name: ClassVar[str]
    table: ClassVar[str]
    mysql_pool: ClassVar[str]
    redis_pool: ClassVar[str]  # Redis pool of the cache tiers (Meta.redis_cache)
    kind: ClassVar[str]  # context-cache key of the entity type (the entity's name)
    schema_stamp: ClassVar[str] = ""  # EntitySchema.stamp() of the definition generated from
    id_max: ClassVar[int]
    select_sql: ClassVar[str]  # SELECT <all columns> FROM `t`
    count_sql: ClassVar[str]  # SELECT COUNT(*) FROM `t`
    select_ids_sql: ClassVar[str]  # SELECT `id` FROM `t`
    by_id_sql: ClassVar[str]
    insert_sql: ClassVar[str]  # INSERT INTO `t` (...) VALUES
    insert_row_sql: ClassVar[str]  # (%s,...)
    update_columns: ClassVar[tuple[str, ...]]  # "`col`=%s" by position
    attribute_names: ClassVar[tuple[str, ...]]  # Python attribute by position
    fake_delete_sql: ClassVar[str | None]
    fake_delete_index: ClassVar[int | None]
    created_at_index: ClassVar[int | None]
    updated_at_index: ClassVar[int | None]
    required_references: ClassVar[tuple[tuple[int, str], ...]]
    default_row: ClassVar[tuple[Any, ...]]
    # cache tiers (runtime/tiers.py)
    row_cache: ClassVar[bool] = False  # Meta.redis_cache
    local_pool: ClassVar[str | None] = None  # Meta.local_cache
    cached: ClassVar[bool] = False  # reads go through local and/or Redis tiers
    cache_stamp: ClassVar[str] = ""  # schema stamp of cached rows
    # Meta.cached_unique_indexes: (name, row positions, column names)
    cached_uniques: ClassVar[tuple[tuple[str, tuple[int, ...], tuple[str, ...]], ...]] = ()
    # Redis Search (runtime/search.py): the pool (None: no searchable field) and the
    # searchable columns (hash field, position, FT type, encoding, sortable, nullable)
    search_pool: ClassVar[str | None] = None
    search_spec: ClassVar[SearchSpec] = ()
    search_positions: ClassVar[frozenset[int]] = frozenset()

    def __init__(self) -> None:
        self._after_insert: InsertHook | None = None
        self._after_update: UpdateHook | None = None
        self._after_delete: InsertHook | None = None
        _IMPORTED.setdefault(self.entity_name, []).append(self)

    def __repr__(self) -> str:
        return f"<{self.entity_name}Provider table={self.table!r}>"

    # -- plumbing ------------------------------------------------------------------

    def _binding(self, ctx: Context) -> Binding:
        """What this entity type is bound to on the context's engine (runtime/state.py)."""
        runtime = ctx._runtime
        try:
            return runtime.bindings[self.kind]
        except KeyError:
            return runtime.bind(self)

    def _pool(self, ctx: Context) -> MySQLPool:
        return self._binding(ctx).pool

    def _load(self, ctx: Context, row: tuple[Any, ...]) -> E:
        entity: E = self.entity_class._loaded(ctx, row)
        return entity

    def _hydrate(self, ctx: Context, rows: Iterable[tuple[Any, ...]]) -> list[E]:
        """Entities for full rows, reusing the ones this context already holds."""
        found: list[E] = self.entity_class._loaded_many(ctx, rows, ctx._kind_cache(self.kind))
        return found

    def tiers(self, engine: Engine) -> Tiers | None:
        """This entity's local/Redis tiers on ``engine`` (``None`` when it has none)."""
        from fluxa_django.runtime.state import state_of

        return state_of(engine).bind(self).tiers

    def _cached_rows(self, ctx: Context) -> Tiers:
        tiers = self._binding(ctx).tiers
        assert tiers is not None
        return tiers

    # -- creating --------------------------------------------------------------------

    def new(self, ctx: Context) -> E:
        """A new entity with the next free id; inserted by the next ``ctx.flush()``."""
        row = list(self.default_row)
        row[0] = self._binding(ctx).ids().next_id()
        entity: E = self.entity_class._created(ctx, row)
        return entity

    def new_with_id(self, ctx: Context, id: int) -> E:
        """A new entity with a caller-chosen id."""
        if isinstance(id, bool) or not isinstance(id, int) or not 1 <= id <= self.id_max:
            raise ValueError(f"{self.entity_name}.id: {id!r} is not a valid id (1..{self.id_max})")
        return self._new(ctx, id)

    def _new(self, ctx: Context, id_: int) -> E:
        row = list(self.default_row)
        row[0] = id_
        entity: E = self.entity_class._created(ctx, row)
        return entity

    # -- by id -------------------------------------------------------------------------

    def get_by_id(self, ctx: Context, id: int) -> E | None:
        """The entity with this id (soft-deleted ones included), or ``None``."""
        if type(id) is not int:
            id = self._id_arg(id)
        if not 0 < id <= self.id_max:
            return None  # no such row can exist: no round trip, nothing cached
        cache = ctx._kind_cache(self.kind)
        if cache is not None:
            cached = cache.get(id, _MISSING)
            if cached is not _MISSING:
                found: E | None = cached
                return found
        binding = self._binding(ctx)
        tiers = binding.tiers if self.cached else None
        row = binding.rows.one(ctx, id) if tiers is None else tiers.row(ctx, id)
        entity = None if row is None else self.entity_class._loaded(ctx, row)
        if cache is not None:
            cache[id] = entity
        return entity

    def _id_arg(self, value: Any) -> int:
        """An id argument as a plain int (cache keys must be canonical: ``1``, never ``1.0``)."""
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"{self.entity_name}.id: expected an int, got {type(value).__name__}")
        return operator.index(value)

    def must_get_by_id(self, ctx: Context, id: int) -> E:
        entity = self.get_by_id(ctx, id)
        if entity is None:
            raise EntityNotFound(f"{self.entity_name} with id {id} not found")
        return entity

    def get_by_ids(self, ctx: Context, ids: Iterable[int]) -> list[E]:
        """Entities in input order, each id once, missing ids skipped (one query at most)."""
        id_max = self.id_max
        wanted = [
            i
            for i in dict.fromkeys(i if type(i) is int else self._id_arg(i) for i in ids)
            if 0 < i <= id_max  # other ids cannot exist: skipped without a round trip
        ]
        if not wanted:
            return []
        return self._by_ids(ctx, wanted)

    def _by_ids(self, ctx: Context, wanted: list[int]) -> list[E]:
        """``get_by_ids`` of ids known to be distinct valid ints."""
        cache = ctx._kind_cache(self.kind)
        found: dict[int, E | None] = {}
        missing: list[int] = []
        if not cache:  # a fresh context (or none): nothing to look up one by one
            missing = wanted
        else:
            for id_ in wanted:
                cached: Any = cache.get(id_, _MISSING)
                if cached is _MISSING:
                    missing.append(id_)
                else:
                    found[id_] = cached
        if missing:
            binding = self._binding(ctx)
            tiers = binding.tiers if self.cached else None
            if tiers is not None:
                loaded = tiers.rows(ctx, missing)
                if (
                    not found
                    and len(loaded) == len(wanted)
                    and list(loaded) == wanted
                    and None not in loaded.values()
                ):
                    # the usual case: every row found, answered in the order asked
                    return self._hydrate(ctx, cast("Iterable[tuple[Any, ...]]", loaded.values()))
                rows = [row for row in loaded.values() if row is not None]
            else:
                rows = list(binding.rows.many(ctx, missing).values())
            for entity in self._hydrate(ctx, rows):
                found[entity._row[0]] = entity
            if cache is not None:
                for id_ in missing:
                    if id_ not in found:
                        cache[id_] = None  # known missing
        return [e for e in (found.get(i) for i in wanted) if e is not None]

    # -- searching ----------------------------------------------------------------------

    def _own(self, query: Query[Any]) -> None:
        """Refuse conditions and sort columns made from another entity's ``fields`` (they
        would test a column of this table that happens to have the same name, or fail in
        MySQL). mypy flags them too: see ``Query``."""
        if not isinstance(query, Query):
            raise TypeError(
                f"{self.entity_name}Provider: expected a Query, got {type(query).__name__}"
            )
        for condition in query._conditions:
            if condition.entity and condition.entity != self.entity_name:
                raise TypeError(
                    f"{self.entity_name}Provider: a condition on {condition.entity} cannot "
                    f"filter {self.entity_name} (use {self.entity_name}Provider.fields)"
                )
        for _, _, entity in query._order:
            if entity and entity != self.entity_name:
                raise TypeError(
                    f"{self.entity_name}Provider: a column of {entity} cannot sort "
                    f"{self.entity_name} (use {self.entity_name}Provider.fields)"
                )

    def _rows(self, ctx: Context, head: str, query: Query[Any]) -> list[Any]:
        self._own(query)
        clause, args = query.where_clause(self.fake_delete_sql)
        page = query.page
        sql = head + clause + query.order_clause() + (page.limit_sql() if page else "")
        return self._binding(ctx).rows.query(ctx, sql, args)

    def search_many(self, ctx: Context, query: Query[E] | Query[Unfiltered]) -> list[E]:
        """Entities matching ``query`` in its order.

        One MySQL round trip; for cached entities the ids are selected and the
        entities loaded through the tiers (one round trip per tier at most).
        """
        if self.cached and not self._cached_rows(ctx).bypassed():
            ids = [row[0] for row in self._rows(ctx, self.select_ids_sql, query)]
            found = self.get_by_ids(ctx, ids)
            deleted = self.fake_delete_index
            where = query.where
            if deleted is not None and (where is None or not where.includes_fake_deletes):
                # soft-deleted between the two steps: a search never returns those
                return [e for e in found if not e._stored[deleted]]
            return found
        return self._hydrate(ctx, self._rows(ctx, self.select_sql, query))

    def count(self, ctx: Context, query: Query[E] | Query[Unfiltered] | None = None) -> int:
        query = Query() if query is None else query
        self._own(query)
        clause, args = query.where_clause(self.fake_delete_sql)
        rows = self._binding(ctx).rows.query(ctx, self.count_sql + clause, args, "count")
        return int(rows[0][0])

    def search_many_with_total(
        self, ctx: Context, query: Query[E] | Query[Unfiltered]
    ) -> tuple[list[E], int]:
        """The page of ``query`` and the total number of matches (two round trips; one when 0)."""
        total = self.count(ctx, query)
        if total == 0:
            return [], 0
        return self.search_many(ctx, query), total

    def search_one(self, ctx: Context, query: Query[E] | Query[Unfiltered] | Where) -> E | None:
        """The first match; an exact match of a cached unique index is answered from Redis."""
        if isinstance(query, Where):
            query = Query().filter_where(query)
        self._own(query)
        if self.cached_uniques and query.where is None:
            match = self._unique_match(query.conditions)
            if match is not None:
                return self._by_unique(ctx, match[0], match[1], query.conditions)
        found = self.search_many(ctx, query.clone().pager(Pager(1, 1)))
        return found[0] if found else None

    def _unique_match(
        self, conditions: Sequence[Condition[Any]]
    ) -> tuple[int, tuple[Any, ...]] | None:
        """``(index number, values)`` when the conditions are exactly a cached unique index's equalities."""
        by_column = {c.column: c.eq_value for c in conditions if c.column}
        if len(by_column) != len(conditions):
            return None
        for number, (_, _, columns) in enumerate(self.cached_uniques):
            if len(columns) == len(by_column) and all(c in by_column for c in columns):
                return number, tuple(by_column[c] for c in columns)
        return None

    def _by_unique(
        self,
        ctx: Context,
        index: int,
        values: tuple[Any, ...],
        conditions: Sequence[Condition[Any]],
    ) -> E | None:
        """Cached unique index lookup: Redis value -> id, verified against the row."""
        from fluxa_django.runtime.codec import unique_token

        if any(v is None for v in values):  # NULLs never collide in a unique index
            return next(iter(self._by_columns(ctx, conditions, None, True)), None)
        name, positions, _ = self.cached_uniques[index]
        tiers = self._cached_rows(ctx)
        key = tiers.unique_key(name, unique_token(values))
        cached_id = tiers.unique_id(ctx, key)
        if cached_id is not None:
            entity = self.get_by_id(ctx, cached_id)
            if entity is not None and self._holds(entity, positions, values):
                return entity
            tiers.set_unique(ctx, key, None)  # stale: the row changed or is gone
        query = Query().filter(*conditions).pager(Pager(1, 1))
        found = self._hydrate(ctx, self._rows(ctx, self.select_sql, query))
        if not found:
            return None
        entity = found[0]
        if self._holds(entity, positions, values):
            tiers.set_unique(ctx, key, entity._row[0])
        return entity

    def _holds(self, entity: E, positions: tuple[int, ...], values: tuple[Any, ...]) -> bool:
        """True when the entity's stored row has exactly these index values and is live."""
        from fluxa_django.runtime.codec import index_value

        row = entity._stored
        if self.fake_delete_index is not None and row[self.fake_delete_index]:
            return False
        return all(
            index_value(row[p]) == index_value(v) for p, v in zip(positions, values, strict=True)
        )

    def search(self, ctx: Context, where: Where, pager: Pager | None = None) -> list[E]:
        return self.search_many(ctx, Query().filter_where(where).pager(pager))

    def search_with_count(self, ctx: Context, where: Where, pager: Pager) -> tuple[list[E], int]:
        return self.search_many_with_total(ctx, Query().filter_where(where).pager(pager))

    def search_ids(self, ctx: Context, where: Where, pager: Pager | None = None) -> list[int]:
        rows = self._rows(ctx, self.select_ids_sql, Query().filter_where(where).pager(pager))
        return [row[0] for row in rows]

    def search_ids_with_count(
        self, ctx: Context, where: Where, pager: Pager
    ) -> tuple[list[int], int]:
        total = self.count(ctx, Query().filter_where(where))
        if total == 0:
            return [], 0
        return self.search_ids(ctx, where, pager), total

    def get_all(self, ctx: Context) -> list[E]:
        return self.search_many(ctx, Query().sort_by_asc(_ID))

    def _by_columns(
        self, ctx: Context, conditions: Sequence[Condition[Any]], pager: Pager | None, one: bool
    ) -> list[E]:
        query = Query().filter(*conditions)
        if one:
            return self.search_many(ctx, query.pager(Pager(1, 1)))
        return self.search_many(ctx, query.sort_by_asc(_ID).pager(pager))

    # -- Redis Search ---------------------------------------------------------------

    def _search(self, ctx: Context, query: RedisSearchQuery[Any]) -> SearchIndex:
        index = self._binding(ctx).search
        if index is None:
            raise TypeError(
                f"{self.entity_name} has no searchable field: mark fields "
                "`field(searchable=True)` to search it in Redis"
            )
        if not isinstance(query, RedisSearchQuery):
            raise TypeError(
                f"{self.entity_name}Provider: expected a RedisSearchQuery, "
                f"got {type(query).__name__}"
            )
        for entity in query.entities():
            if entity != self.entity_name:
                raise TypeError(
                    f"{self.entity_name}Provider: a Redis Search condition on {entity} cannot "
                    f"search {self.entity_name} (use {self.entity_name}Provider.fields_redis_search)"
                )
        return index

    def _search_page(
        self, ctx: Context, query: RedisSearchQuery[Any], limit: int | None = None
    ) -> tuple[int, list[int]]:
        index = self._search(ctx, query)
        if query.matches_nothing():
            return 0, []
        text, sort = query.query_string(), query.sort_args()
        page = query.page
        offset, size = (page.offset, page.size) if page is not None else (0, SEARCH_WINDOW)
        if limit is not None:  # search_one: the first match, whatever the pager says
            offset, size = 0, limit
        if offset + size <= SEARCH_WINDOW:
            total, ids = index.search(text, sort, offset, size, ctx)
            if page is not None or total <= len(ids) or limit is not None:
                return total, ids
            return total, index.all_ids(text, sort, 0, ctx)  # no pager: every match
        total, _ = index.search(text, sort, 0, 0, ctx)
        ids = index.all_ids(text, sort, offset, ctx)
        return total, ids if page is None else ids[:size]

    def search_ids_in_redis(
        self, ctx: Context, query: RedisSearchQuery[E] | RedisSearchQuery[Unfiltered]
    ) -> list[int]:
        """The ids matching ``query`` in its order (all of them without a pager)."""
        return self._search_page(ctx, query)[1]

    def search_many_in_redis(
        self, ctx: Context, query: RedisSearchQuery[E] | RedisSearchQuery[Unfiltered]
    ) -> list[E]:
        """The entities matching ``query``: ids from one ``FT.SEARCH``, entities through the
        context cache and the cache tiers (one round trip per tier), in the query's order."""
        return self._search_hydrate(ctx, self._search_page(ctx, query)[1])

    def search_many_in_redis_with_total(
        self, ctx: Context, query: RedisSearchQuery[E] | RedisSearchQuery[Unfiltered]
    ) -> tuple[list[E], int]:
        """The page of ``query`` and the number of all matches, from one ``FT.SEARCH``."""
        total, ids = self._search_page(ctx, query)
        return self._search_hydrate(ctx, ids), total

    def search_one_in_redis(
        self, ctx: Context, query: RedisSearchQuery[E] | RedisSearchQuery[Unfiltered]
    ) -> E | None:
        """The first match of ``query`` (its pager is ignored)."""
        ids = self._search_page(ctx, query, limit=1)[1]
        found = self._search_hydrate(ctx, ids[:1])
        return found[0] if found else None

    def count_in_redis(
        self, ctx: Context, query: RedisSearchQuery[E] | RedisSearchQuery[Unfiltered]
    ) -> int:
        """The number of matches (``FT.SEARCH ... LIMIT 0 0``)."""
        index = self._search(ctx, query)
        if query.matches_nothing():
            return 0
        return index.search(query.query_string(), [], 0, 0, ctx)[0]

    def _search_hydrate(self, ctx: Context, ids: list[int]) -> list[E]:
        found = self._by_ids(ctx, ids)  # ids from the index: unique, valid ints
        deleted = self.fake_delete_index
        if deleted is None:
            return found
        return [e for e in found if not e._stored[deleted]]  # deleted since it was indexed

    def reindex_redis_search(
        self, ctx: Context, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Rebuild this entity's index from MySQL (a new index, back-filled, then the
        alias switched to it: searches meanwhile use the previous index)."""
        index = self._binding(ctx).search
        if index is None:
            raise TypeError(f"{self.entity_name} has no searchable field")
        index.build(force=True, progress=progress)

    def clear_redis_cache(self, ctx: Context) -> int:
        """Delete this entity's Redis cache entries (and local rows everywhere); returns the count."""
        tiers = self.tiers(ctx.engine)
        return tiers.clear(ctx) if tiers is not None else 0

    # -- hooks -------------------------------------------------------------------------------

    def on_after_insert(self, handler: Callable[[Context, E], None]) -> None:
        """Call ``handler(ctx, entity)`` after a flush inserted an entity (replaces the previous one)."""
        self._after_insert = handler

    def on_after_update(self, handler: Callable[[Context, E, dict[str, Any]], None]) -> None:
        """Call ``handler(ctx, entity, changes)``; ``changes`` maps field -> old value."""
        self._after_update = handler

    def on_after_delete(self, handler: Callable[[Context, E], None]) -> None:
        self._after_delete = handler

    # -- flush support -------------------------------------------------------------------------

    def validate_insert(self, row: Sequence[Any]) -> None:
        for index, name in self.required_references:
            if not row[index]:
                raise ValueError(f"{self.entity_name}.{name}: a required reference is not set")

    def validate_update(self, row: Sequence[Any], changed: Sequence[int]) -> None:
        for index, name in self.required_references:
            if index in changed and not row[index]:
                raise ValueError(f"{self.entity_name}.{name}: a required reference cannot be unset")

    def changes(self, entity: E, columns: Sequence[int]) -> dict[str, Any]:
        """``{attribute: old value}`` for the changed columns (auto timestamps left out)."""
        orig = entity._orig
        assert orig is not None
        old = self._load(entity._ctx, orig)
        skip = {self.created_at_index, self.updated_at_index}
        return {
            self.attribute_names[i]: getattr(old, self.attribute_names[i])
            for i in columns
            if i not in skip
        }
