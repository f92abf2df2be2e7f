"""``flush(ctx)``: write every tracked change, one transaction per MySQL pool.

Plan first (validate everything, touch nothing), then per pool: multi-row
INSERTs per table, one UPDATE of the changed columns per entity, batched
DELETEs, COMMIT. Entities are marked clean only after their pool committed;
a failure rolls back that pool and leaves its entities dirty.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from fluxa_django.backends.mysql import DriverError, database_error, row_literals
from fluxa_django.errors import HookError
from fluxa_django.runtime import mysql as sql_runner
from fluxa_django.runtime import outer
from fluxa_django.runtime.entity import DELETE, FORCE_DELETE, GONE, NEW, EntityBase
from fluxa_django.runtime.flushkeys import FlushKeys, UniqueIndex, collect_keys
from fluxa_django.runtime.search_index import SearchIndex, document

if TYPE_CHECKING:
    from fluxa_django.runtime.context import Context
    from fluxa_django.runtime.provider import ProviderBase
    from fluxa_django.runtime.tiers import Tiers

INSERT_CHUNK = 1000


@dataclass
class TablePlan:
    provider: ProviderBase[Any]
    inserts: list[tuple[EntityBase, list[Any]]] = field(default_factory=list)
    updates: list[tuple[EntityBase, list[Any], list[int], bool]] = field(default_factory=list)
    deletes: list[EntityBase] = field(default_factory=list)

    def entities(self) -> list[EntityBase]:
        return [e for e, _ in self.inserts] + [e for e, *_ in self.updates] + self.deletes


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)


def plan(ctx: Context) -> dict[str, dict[str, TablePlan]]:
    """Group the tracked entities by pool and table; raises before any SQL on bad input."""
    now = _now()
    pools: dict[str, dict[str, TablePlan]] = {}
    provider: ProviderBase[Any] | None = None
    # Set at the first entity (its provider is not None) and whenever the type changes.
    table: TablePlan
    inserts: Callable[[tuple[EntityBase, list[Any]]], None]
    validate_insert: Callable[[Sequence[Any]], None] | None
    created: int | None
    updated: int | None
    for entity in ctx._tracked.values():
        state = entity._state
        if state == GONE:
            continue
        if entity._provider is not provider:  # entities of one type usually come in a run
            provider = entity._provider
            tables = pools.setdefault(provider.mysql_pool, {})
            found = tables.get(provider.table)
            if found is None:
                found = tables[provider.table] = TablePlan(provider)
            table = found
            inserts = table.inserts.append
            validate_insert = provider.validate_insert if provider.required_references else None
            created, updated = provider.created_at_index, provider.updated_at_index
        if state == NEW:
            if validate_insert is not None:
                validate_insert(entity._row)
            inserts((entity, entity._insert_row(now, created, updated)))
        elif state == FORCE_DELETE:
            table.deletes.append(entity)
        else:
            row = list(entity._row)
            changed = entity.changed_columns()  # a soft delete set `fake_delete` already
            soft = state == DELETE
            if not soft:
                table.provider.validate_update(row, changed)
            if not changed:  # e.g. delete() again on an already soft-deleted row
                entity._settle()
                continue
            if updated is not None and updated not in changed:
                row[updated] = now
                changed.append(updated)
            table.updates.append((entity, row, sorted(changed), soft))
    return pools


def _cache_keys(ctx: Context, tables: dict[str, TablePlan]) -> list[FlushKeys]:
    """The cache keys (rows, unique-index values) the writes of one MySQL pool affect."""
    entries: list[tuple[Tiers, Sequence[UniqueIndex], list[Any]]] = []
    for table in tables.values():
        provider = table.provider
        tiers = provider._binding(ctx).tiers
        if tiers is None:
            continue
        rows: list[Any] = [row for _, row in table.inserts]
        for entity, row, _, _ in table.updates:
            rows.append(row)
            if entity._orig is not None:
                rows.append(entity._orig)
        for entity in table.deletes:
            rows.append(entity._row)
            if entity._orig is not None:
                rows.append(entity._orig)
        entries.append((tiers, provider.cached_uniques, rows))
    return list(collect_keys(entries).values()) if entries else []


# Per searchable table: its index and the documents to write ((id, fields | None: delete)).
# Updated rows come apart, as (id, the entity's new row, soft-deleted): a flush reads them
# back inside its transaction (see _claim) and only flush_async makes their documents from
# the entities' rows; with the position of the soft-delete flag.
Docs = list[tuple[int, list[str] | None]]
Updated = list[tuple[int, Sequence[Any], bool]]
SearchWork = list[tuple[SearchIndex, Docs, Updated, int | None]]
# The same after the counters were taken: (id, counter value, fields | None).
Claimed = list[tuple[SearchIndex, list[tuple[int, str, list[str] | None]]]]


def _search_work(ctx: Context, tables: dict[str, TablePlan]) -> SearchWork:
    """The Redis Search documents the writes of one MySQL pool change (runtime/search.py):
    a live inserted row gets its document, an update touching a searchable column or the
    soft-delete flag rewrites or removes it (as read back by ``_claim``), a deleted row
    loses it."""
    work: SearchWork = []
    for table in tables.values():
        provider = table.provider
        if provider.search_pool is None:
            continue
        index = provider._binding(ctx).search
        assert index is not None
        spec, fd, positions = (
            provider.search_spec,
            provider.fake_delete_index,
            provider.search_positions,
        )
        docs: Docs = []
        updated: Updated = []
        for _, row in table.inserts:
            if fd is None or not row[fd]:  # a row inserted soft-deleted is never indexed
                docs.append((row[0], document(spec, row)))
        for _, row, changed, soft in table.updates:
            if (fd is not None and (soft or fd in changed)) or not positions.isdisjoint(changed):
                updated.append((row[0], row, fd is not None and bool(row[fd])))
        for entity in table.deletes:
            docs.append((entity._row[0], None))
        if docs or updated:
            work.append((index, docs, updated, fd))
    return work


READ_BACK_CHUNK = 1000


def _read_back(
    ctx: Context, conn: Any, pool: str, index: SearchIndex, ids: list[int], fd: int | None
) -> Docs:
    """The documents of updated rows as this transaction leaves them (they are locked
    by its UPDATEs). An UPDATE writes the changed columns only: the entity's copy of the
    others may be stale, or the row soft-deleted (no document) or deleted (no row) by
    another flush since the entity was loaded."""
    rows: dict[int, Sequence[Any]] = {}
    cur = conn.cursor()
    try:
        for start in range(0, len(ids), READ_BACK_CHUNK):
            chunk = ids[start : start + READ_BACK_CHUNK]
            marks = ",".join(["%s"] * len(chunk))
            sql = f"SELECT {index.columns_sql} FROM `{index.table}` WHERE `id` IN ({marks})"
            try:
                sql_runner.execute(ctx, cur, pool, sql, chunk, "select")
                found = cur.fetchall()
            except DriverError as exc:
                raise database_error(exc, pool, index.entity, index.table) from exc
            rows.update((int(row[0]), row) for row in found)
    finally:
        cur.close()
    docs: Docs = []
    for id_ in ids:
        row = rows.get(id_)
        live = row is not None and (fd is None or not row[fd])
        docs.append((id_, document(index.spec, row) if live and row is not None else None))
    return docs


def _claim(work: SearchWork | None, transaction: tuple[Context, Any, str] | None = None) -> Claimed:
    """Inside the ``transaction`` (context, connection, pool), after the statements: the
    documents of the updated rows as read back (``_read_back``), then the rows' write
    counters. Without a transaction (flush_async) the entities' rows are used."""
    claimed: Claimed = []
    for index, written, updated, fd in work or ():
        if updated and transaction is not None:
            ctx, conn, pool = transaction
            ids = [id_ for id_, _, _ in updated]
            docs = written + _read_back(ctx, conn, pool, index, ids, fd)
        else:  # soft-deleted: no document
            spec = index.spec
            docs = written + [
                (i, None if hidden else document(spec, r)) for i, r, hidden in updated
            ]
        seen = index.claim(id_ for id_, _ in docs)
        claimed.append((index, [(id_, seen[id_], fields) for id_, fields in docs]))
    return claimed


def _write_documents(claimed: Claimed) -> None:
    for index, items in claimed:
        index.after_commit(items)


def _repair_documents(claimed: Claimed) -> None:
    """A flush that failed after taking counters may have made a committed flush skip its
    documents: make them equal to MySQL again (best effort; the error is raised anyway)."""
    for index, items in claimed:
        with contextlib.suppress(Exception):
            index.sync([id_ for id_, _, _ in items])


def _release(keys: list[FlushKeys], committed: bool) -> None:
    for flush_keys in keys:
        flush_keys.release(committed)


def flush(ctx: Context) -> None:
    if not ctx._tracked:
        return
    pools = plan(ctx)
    # Cached rows are marked in Redis before any SQL: with Redis unreachable
    # the flush is refused and nothing is written.
    cache_keys = {code: _cache_keys(ctx, tables) for code, tables in pools.items()}
    marked: list[FlushKeys] = []
    try:
        for keys in cache_keys.values():
            for flush_keys in keys:
                flush_keys.mark()
                marked.append(flush_keys)
    except BaseException:
        _release(marked, committed=False)
        raise
    deferred_by_alias: dict[str, list[Callable[[], None]]] = {}
    immediate: list[Callable[[], None]] = []
    unwritten = set(pools)
    search_work = {code: _search_work(ctx, tables) for code, tables in pools.items()}
    claimed: Claimed = []
    try:
        for pool_code in sorted(pools):
            tables = pools[pool_code]
            pool = ctx.engine.mysql(pool_code)
            raw = sql_runner.outer_connection(pool)
            if raw is not None and pool.django_alias is not None:
                # Joins the outer transaction, inside a savepoint: a failure undoes
                # this flush's statements only, whatever the caller does next.
                with outer.active().savepoint(pool.django_alias):
                    _write(ctx, raw, pool_code, tables)
                    claimed = _claim(search_work[pool_code], (ctx, raw, pool_code))
            else:
                with pool.begin() as tx:
                    _write(ctx, tx.raw, pool_code, tables)
                    claimed = _claim(search_work[pool_code], (ctx, tx.raw, pool_code))
            unwritten.discard(pool_code)
            effects = _finish(ctx, tables)
            if unwritten:  # a later pool may fail: these entities are done with
                for table in tables.values():
                    for entity in table.entities():
                        ctx._untrack(entity)
            # After the commit, before any hook: caches and search documents first,
            # then the hooks.
            release = partial(_release, cache_keys[pool_code], True)
            documents = partial(_write_documents, claimed)
            if sql_runner.in_outer_transaction(pool):
                if raw is None:
                    # The pool committed on its own connection: caches change now,
                    # only the hooks wait for Django's commit.
                    immediate.append(release)
                    immediate.append(documents)
                else:
                    effects[0:0] = [release, documents]
                deferred_by_alias.setdefault(pool.django_alias or "default", []).extend(effects)
            else:
                immediate.append(release)
                immediate.append(documents)
                immediate.extend(effects)
            claimed = []
    except BaseException:
        _repair_documents(claimed)
        # Pools not written (rolled back or never reached) keep their rows: drop the
        # markers, and evict local copies too (a connection lost during COMMIT leaves
        # the outcome unknown; an extra eviction costs nothing).
        for pool_code in unwritten:
            _release(cache_keys[pool_code], committed=True)
        # Pools written before the failure stay committed: their side effects still run.
        with contextlib.suppress(HookError):
            _after_commit(deferred_by_alias, immediate)
        raise
    ctx._tracked.clear()  # also entities whose changes were all set back
    _after_commit(deferred_by_alias, immediate)


def _after_commit(
    deferred_by_alias: dict[str, list[Callable[[], None]]], immediate: list[Callable[[], None]]
) -> None:
    adapter = outer.active()
    for alias, effects in deferred_by_alias.items():
        adapter.on_commit(alias, partial(run_side_effects, effects))
    run_side_effects(immediate)


def run_side_effects(effects: list[Callable[[], None]]) -> None:
    """Run every after-commit effect; a failing hook does not stop the others.

    The data is committed at this point, so a hook error is raised afterwards
    as ``HookError`` (the changes were saved).
    """
    errors: list[HookError] = []
    for effect in effects:
        try:
            effect()
        except HookError as exc:
            errors.append(exc)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise HookError("; ".join(str(e) for e in errors)) from errors[0]


def _write(ctx: Context, conn: Any, pool: str, tables: dict[str, TablePlan]) -> None:
    cur = conn.cursor()
    try:
        for name in sorted(tables):
            table = tables[name]
            try:
                _write_table(ctx, conn, cur, pool, table)
            except DriverError as exc:
                provider = table.provider
                raise database_error(exc, pool, provider.entity_name, provider.table) from exc
    finally:
        cur.close()


def _write_table(ctx: Context, conn: Any, cur: Any, pool: str, table: TablePlan) -> None:
    provider = table.provider
    rows = [row for _, row in table.inserts]
    if rows:
        literals = row_literals(conn, rows)
        for start, end in _statements(rows, literals):
            count = end - start
            sql = provider.insert_sql + ",".join([provider.insert_row_sql] * count)
            if literals is not None:  # formatted in one pass (backends/mysql.py)
                shown_args = range(count * len(rows[0]))  # the loggers see how many values
                statement = provider.insert_sql + ",".join(literals[start:end])
                sql_runner.execute(ctx, cur, pool, sql, shown_args, "insert", statement)
                continue
            args: list[Any] = []
            for row in rows[start:end]:
                args.extend(row)
            sql_runner.execute(ctx, cur, pool, sql, args, "insert")
    _write_updates(ctx, cur, pool, provider, table.updates)
    if table.deletes:
        sql, ids = delete_statement(provider, [e._row[0] for e in table.deletes])
        sql_runner.execute(ctx, cur, pool, sql, ids, "delete")


UPDATE_CHUNK = 500
STATEMENT_CHARS = 1_000_000  # per INSERT: ≤ 4 MB of UTF-8, far below max_allowed_packet


def _statements(rows: list[list[Any]], literals: list[str] | None) -> Iterator[tuple[int, int]]:
    """``(start, end)`` row ranges of the INSERT statements: at most ``INSERT_CHUNK`` rows
    and about ``STATEMENT_CHARS`` characters each (one row may be longer alone)."""
    start = size = 0
    for index, row in enumerate(rows):
        if literals is not None:
            length = len(literals[index]) + 1
        else:
            length = sum(len(v) if type(v) in (str, bytes) else 8 for v in row) + 4 * len(row)
        if index > start and (index - start >= INSERT_CHUNK or size + length > STATEMENT_CHARS):
            yield start, index
            start, size = index, 0
        size += length
    yield start, len(rows)


def _write_updates(
    ctx: Context,
    cur: Any,
    pool: str,
    provider: ProviderBase[Any],
    updates: list[tuple[EntityBase, list[Any], list[int], bool]],
) -> None:
    for sql, args in update_statements(provider, updates):
        sql_runner.execute(ctx, cur, pool, sql, args, "update")


def update_statements(
    provider: ProviderBase[Any],
    updates: list[tuple[EntityBase, list[Any], list[int], bool]],
) -> Iterator[tuple[str, list[Any]]]:
    """The UPDATEs of a table: rows changing the same columns share one
    ``UPDATE ... CASE `id` WHEN ...`` (``%s`` placeholders, arguments)."""
    groups: dict[tuple[int, ...], list[list[Any]]] = {}
    for _entity, entity_row, entity_changed, _soft in updates:
        groups.setdefault(tuple(entity_changed), []).append(entity_row)
    columns = provider.update_columns
    table = provider.table
    for changed, rows in groups.items():
        if len(rows) == 1:
            row = rows[0]
            sql = f"UPDATE `{table}` SET {','.join(columns[i] for i in changed)} WHERE `id`=%s"
            yield sql, [*(row[i] for i in changed), row[0]]
            continue
        for start in range(0, len(rows), UPDATE_CHUNK):
            chunk = rows[start : start + UPDATE_CHUNK]
            whens = " WHEN %s THEN %s" * len(chunk)
            sets = ",".join(f"{columns[i][:-2]}CASE `id`{whens} END" for i in changed)
            args: list[Any] = []
            for i in changed:
                for row in chunk:
                    args.append(row[0])
                    args.append(row[i])
            args.extend(row[0] for row in chunk)
            marks = ",".join(["%s"] * len(chunk))
            yield f"UPDATE `{table}` SET {sets} WHERE `id` IN ({marks})", args


def delete_statement(provider: ProviderBase[Any], ids: list[Any]) -> tuple[str, list[Any]]:
    return f"DELETE FROM `{provider.table}` WHERE `id` IN ({','.join(['%s'] * len(ids))})", ids


def insert_statements(
    insert_sql: str, row_sql: str, rows: list[list[Any]]
) -> Iterator[tuple[str, list[Any]]]:
    """The multi-row INSERTs of ``rows`` in the bound (``%s``) form, chunked as a flush
    writes them (``insert_sql``: ``INSERT INTO ... VALUES ``, ``row_sql``: ``(%s,...)``)."""
    for start, end in _statements(rows, None):
        args: list[Any] = []
        for row in rows[start:end]:
            args.extend(row)
        yield insert_sql + ",".join([row_sql] * (end - start)), args


def _finish(ctx: Context, tables: dict[str, TablePlan]) -> list[Callable[[], None]]:
    """Mark entities clean after their pool committed; return the side effects to run.

    One effect per table (context cache + hooks), not one closure per entity.
    """
    effects: list[Callable[[], None]] = []
    for table in tables.values():
        provider = table.provider
        inserted = [entity for entity, _ in table.inserts]
        for entity in inserted:
            entity._inserted()
        updated: list[tuple[EntityBase, dict[str, Any] | None, bool]] = []
        want_changes = provider._after_update is not None
        for entity, row, changed, soft in table.updates:
            changes = provider.changes(entity, changed) if want_changes and not soft else None
            entity._updated(row)
            updated.append((entity, changes, soft))
        for entity in table.deletes:
            entity._deleted()
        effects.append(partial(_table_effects, ctx, provider, inserted, updated, table.deletes))
    return effects


def _table_effects(
    ctx: Context,
    provider: ProviderBase[Any],
    inserted: list[EntityBase],
    updated: list[tuple[EntityBase, dict[str, Any] | None, bool]],
    deleted: list[EntityBase],
) -> None:
    """After commit: refresh this context's cache, then run the hooks."""
    cache = ctx._kind_cache(provider.kind)
    if cache is not None:
        for entity in inserted:
            cache[entity._row[0]] = entity
        for entity, _, _ in updated:
            cache[entity._row[0]] = entity
        for entity in deleted:
            cache[entity._row[0]] = None
    errors: list[BaseException] = []
    insert_hook, update_hook, delete_hook = (
        provider._after_insert,
        provider._after_update,
        provider._after_delete,
    )
    if insert_hook is not None:
        for entity in inserted:
            _call(errors, insert_hook, ctx, entity)
    for entity, changes, soft in updated:
        if soft and delete_hook is not None:
            _call(errors, delete_hook, ctx, entity)
        elif not soft and update_hook is not None:
            _call(errors, update_hook, ctx, entity, changes or {})
    if delete_hook is not None:
        for entity in deleted:
            _call(errors, delete_hook, ctx, entity)
    if errors:
        raise HookError(
            f"{len(errors)} after-flush hook(s) failed; the changes were saved: {errors[0]!r}"
        ) from errors[0]


def _call(errors: list[BaseException], hook: Callable[..., None], *args: Any) -> None:
    try:
        hook(*args)
    except Exception as exc:
        errors.append(exc)
