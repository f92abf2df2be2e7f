"""One entity's Redis Search index: its documents, their writes, the alias and rebuilds.

See ``runtime/search.py`` for the document format and the ordering rule. Keys (one
Redis Cluster hash tag per table): documents ``fxs:{<ns>}:d:<id>``, write counters
``fxs:{<ns>}:v:<id>``, indexes ``fxs:{<ns>}:i:<definition hash>:<generation>``, the
alias the application queries ``fxs:{<ns>}:a`` and the progress of a rebuild
``fxs:{<ns>}:r:<index>``.

A rebuild never changes what readers see until it is complete: every live row is
written again from MySQL (a row changed meanwhile is left to the flush that
changed it), documents of rows that are gone are removed, then the new index is
created over the same documents, and only when RediSearch reports it fully
built, with no indexing failure, is the alias moved to it and the old index
dropped (its documents stay: they are the new index's too). An interrupted
rebuild continues from its progress key.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from fluxa_django import metrics
from fluxa_django.backends.redis import quick_command
from fluxa_django.errors import FluxaError, PoolError
from fluxa_django.runtime import search
from fluxa_django.runtime.namespace import key_prefix
from fluxa_django.runtime.observe import OBSERVERS, notify

if TYPE_CHECKING:
    from fluxa_django.backends.mysql import MySQLPool
    from fluxa_django.backends.redis import RedisPool
    from fluxa_django.engine import Engine
    from fluxa_django.runtime.context import Context
    from fluxa_django.schema.model import EntitySchema

log = logging.getLogger("fluxa_django.search")

# (hash field, row position, FT type, encoding, sortable, nullable)
SearchSpec = tuple[tuple[str, int, str, str, bool, bool], ...]
BATCH = 1000  # rows per MySQL read and per Lua call while rebuilding
WRITE_CHUNK = 500  # documents per Lua call after a flush
INDEX_WAIT = 600.0  # seconds a rebuild waits for RediSearch to finish indexing
# Round-trip names for the observers (fluxa_assert_queries) and the query loggers
_OPERATIONS = {"FT.SEARCH": "search", "FT.AGGREGATE": "search cursor", "FT.CURSOR": "search cursor"}

# KEYS: counter, document (a pair per row). ARGV: count, "1" when the writer is a flush
# (it moves the counter on after writing), then per row the counter value the writer
# saw ("" = none), the number of field/value pairs (-1: delete) and the pairs. A document
# is written (replaced whole: DEL + HSET, one atomic step) only while its counter still
# holds that value. Returns the 1-based numbers of the rows skipped.
_WRITE_LUA = """
local n = tonumber(ARGV[1])
local bump = ARGV[2] == '1'
local skipped = {}
local a = 3
for i = 1, n do
  local expected = ARGV[a]
  local count = tonumber(ARGV[a + 1])
  a = a + 2
  local current = redis.call('GET', KEYS[2 * i - 1]) or ''
  if current == expected then
    redis.call('DEL', KEYS[2 * i])
    if count > 0 then
      redis.call('HSET', KEYS[2 * i], unpack(ARGV, a, a + 2 * count - 1))
    end
    if bump then redis.call('INCR', KEYS[2 * i - 1]) end
  else
    skipped[#skipped + 1] = i
  end
  if count > 0 then a = a + 2 * count end
end
return skipped
"""

_ENCODING = {
    "ID": "id",
    "INT": "int",
    "FAKE_DELETE": "int",
    "BOOL": "bool",
    "FLOAT": "float",
    "DATE": "date",
    "DATETIME": "datetime",
    "ENUM": "tag",
    "SET": "tags",
    "REFERENCE": "id",
    "STR": "text",
}


def spec_of(schema: EntitySchema) -> SearchSpec:
    """The searchable columns of ``schema`` as the index and the documents use them."""
    spec: list[tuple[str, int, str, str, bool, bool]] = []
    for column in schema.columns:
        kind = column.search_type
        if kind is None:
            continue
        encoding = _ENCODING[column.kind.name]
        if encoding == "text" and kind == "TAG":
            encoding = "tag"
        spec.append(
            (column.name, column.position, kind, encoding, column.sortable, column.nullable)
        )
    return tuple(spec)


def create_args(spec: SearchSpec) -> list[str]:
    """The ``SCHEMA`` part of ``FT.CREATE`` (the id first: the default sort)."""
    args: list[str] = [search.ID_FIELD, "AS", search.ID_FIELD, "NUMERIC", "SORTABLE"]
    for name, _, kind, _, sortable, nullable in spec:
        missing = ["INDEXMISSING"] if nullable else []
        sort = ["SORTABLE"] if sortable else []
        tag = ["TAG", "SEPARATOR", search.TAG_SEPARATOR, "CASESENSITIVE", *missing]
        # NOSTEM: a query matches the words it names (``search.words``), not their stems
        text = ["TEXT", "NOSTEM", *missing, *sort]
        if kind == "NUMERIC":
            args += [name, "AS", name, "NUMERIC", *missing, *sort]
        elif kind == "TAG":
            args += [name, "AS", name, *tag, *sort]
        elif kind == "TEXT":
            args += [name, "AS", name, *text]
        else:  # TEXT+TAG
            args += [name, "AS", name, *text]
            args += [f"{name}__tag", "AS", f"{name}__tag", *tag]
    return args


def _encode(encoding: str, value: Any) -> str:
    if encoding in ("int", "id", "float"):
        return search.number_text(value)
    if encoding == "bool":
        return "1" if value else "0"
    if encoding == "date":
        return search.date_text(value)
    if encoding == "datetime":
        return search.datetime_text(value)
    if encoding == "tags":  # a SET: "a,b" from the entity, a set from some drivers
        members = value if isinstance(value, set | frozenset) else str(value).split(",")
        return search.tags_text(",".join(sorted(m for m in members if m)))
    if encoding == "tag":
        return search.tag_text(str(value))
    return search.text_value(str(value))  # text


def document(spec: SearchSpec, row: Sequence[Any]) -> list[str]:
    """The field/value pairs of a row's document (NULL columns are left out)."""
    pairs = ["_id", str(row[0])]
    for name, position, kind, encoding, _, _ in spec:
        value = row[position]
        if value is None:
            continue
        if kind == "TEXT+TAG":
            text = str(value)
            pairs += [name, search.text_value(text), f"{name}__tag", search.tag_text(text)]
        else:
            pairs += [name, _encode(encoding, value)]
    return pairs


@dataclass
class Plan:
    """What ``build`` would do for one entity (``fluxa_migrate --plan``)."""

    entity: str
    pool: str
    action: str  # "create", "rebuild", "resume" or "" (nothing to do)
    index: str
    alias: str
    current: str | None

    def describe(self) -> str:
        same = (
            self.current is not None
            and self.current.rsplit(":", 1)[0] == (self.index.rsplit(":", 1)[0])
        )
        why = {
            "create": "new index",
            "rebuild": (
                f"rebuild of the same definition (was {self.current})"
                if same
                else f"definition changed (was {self.current})"
            ),
            "resume": "resume an interrupted build",
        }.get(self.action, "up to date")
        return (
            f"[search:{self.pool}] {self.entity}: build {self.index}, back-fill from MySQL, "
            f"then point alias {self.alias} at it  -- {why}"
        )


class SearchIndex:
    """The Redis Search index of one entity type on one engine."""

    def __init__(
        self,
        entity: str,
        table: str,
        spec: SearchSpec,
        redis_pool: RedisPool,
        mysql: MySQLPool,
        identity: str,
        app_name: str,
        columns_sql: str,
        fake_delete: str | None,
    ) -> None:
        self.entity = entity
        self.table = table
        self.spec = spec
        self.redis = redis_pool
        self.mysql = mysql
        ns = key_prefix(identity, mysql.database, table, app_name)[3:]  # "{<32 hex>}:"
        self.base = "fxs:" + ns
        self.doc_prefix = self.base + "d:"
        self.alias = self.base + "a"
        self.schema_args = create_args(spec)
        definition = "\x00".join([self.doc_prefix, search.ENCODING_VERSION, *self.schema_args])
        self.version = hashlib.sha256(definition.encode()).hexdigest()[:12]
        self.columns_sql = columns_sql  # "`id`,`a`,..." in row order
        self.fake_delete = fake_delete
        self._script: Any = None

    def __repr__(self) -> str:
        return f"<SearchIndex {self.entity} alias={self.alias!r} version={self.version}>"

    # -- keys ------------------------------------------------------------------------------

    def doc_key(self, id_: int) -> str:
        return f"{self.doc_prefix}{id_}"

    def counter_key(self, id_: int) -> str:
        return f"{self.base}v:{id_}"

    def _client(self) -> redis.Redis:
        return self.redis.client

    def _command(self, *args: Any) -> Any:
        if OBSERVERS:
            notify("redis", _OPERATIONS.get(args[0], args[0].lower()))
        return quick_command(self._client(), *args)

    def _unreachable(self, exc: BaseException, what: str) -> PoolError:
        self.redis.failed(exc)
        return PoolError(
            f"{what}: redis pool {self.redis.code!r} (Redis Search of {self.entity}) "
            f"failed ({type(exc).__name__}: {exc})",
            pool=self.redis.code,
        )

    # -- writes ----------------------------------------------------------------------------

    def claim(self, ids: Iterable[int]) -> dict[int, str]:
        """Inside a flush's transaction, rows locked: take the next counter value of each
        row (its document is written after the commit only if no later flush took one)."""
        wanted = list(ids)
        if not wanted:
            return {}
        pipe = self._client().pipeline(transaction=False)
        for id_ in wanted:
            pipe.incr(self.counter_key(id_))
        if OBSERVERS:
            notify("redis", "search claim")
        try:
            values = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise self._unreachable(exc, "flush refused, nothing was written") from exc
        return {id_: str(v) for id_, v in zip(wanted, values, strict=True)}

    def write(
        self, items: Sequence[tuple[int, str, list[str] | None]], flush: bool = False
    ) -> list[int]:
        """Write documents (``None``: delete) of ``(id, counter value seen, fields)``
        under the ordering rule; returns the ids skipped (a newer writer owns them).
        ``flush``: the writer is a committed flush, which moves the counters of the
        documents it wrote on (see ``runtime/search.py``)."""
        if not items:
            return []
        script = self._script
        if script is None:
            script = self._script = self._client().register_script(_WRITE_LUA)
        pipe = self._client().pipeline(transaction=False)
        chunks = [items[i : i + WRITE_CHUNK] for i in range(0, len(items), WRITE_CHUNK)]
        for chunk in chunks:
            keys: list[str] = []
            args: list[Any] = [len(chunk), "1" if flush else "0"]
            for id_, seen, fields in chunk:
                keys += [self.counter_key(id_), self.doc_key(id_)]
                if fields is None:
                    args += [seen, -1]
                else:
                    args += [seen, len(fields) // 2, *fields]
            script(keys=keys, args=args, client=pipe)
        if OBSERVERS:
            notify("redis", "search write")
        replies = pipe.execute()
        skipped: list[int] = []
        for chunk, reply in zip(chunks, replies, strict=True):
            skipped += [chunk[int(i) - 1][0] for i in reply]
        return skipped

    def after_commit(self, items: Sequence[tuple[int, str, list[str] | None]]) -> None:
        """The documents of a committed flush; a Redis failure is logged (the rows are
        saved; ``fluxa_reindex`` repairs the index)."""
        try:
            self.write(items, flush=True)
        except (redis.RedisError, OSError) as exc:
            self.redis.failed(exc)
            log.error(
                "fluxa: redis pool %r failed writing %d Redis Search document(s) of %s "
                "after a flush (%s); the rows are saved, run `manage.py fluxa_reindex %s` "
                "to repair the index",
                self.redis.code,
                len(items),
                self.entity,
                type(exc).__name__,
                self.entity,
            )

    # -- reads -----------------------------------------------------------------------------

    def _logged(self, ctx: Context | None, shown: str | Callable[[], str], *args: Any) -> Any:
        """One search round trip, reported to ``ctx``'s query loggers and the metrics
        (``shown``: the command without the query, which holds user values; a callable
        when building it costs something: called only when somebody logs)."""
        if ctx is None or (not ctx._loggers and metrics.METRICS is None):
            return self._command(*args)
        from fluxa_django.runtime import mysql as sql_runner

        operation = _OPERATIONS.get(args[0], args[0].lower())
        text = shown if callable(shown) else (lambda: str(shown))
        return sql_runner.timed(
            ctx, "redis", self.redis.code, operation, text, lambda: self._command(*args)
        )

    @staticmethod
    def _missing_index(exc: BaseException) -> bool:
        text = str(exc).lower()
        return isinstance(exc, redis.ResponseError) and (
            "no such index" in text or "unknown index" in text
        )

    def _failed(self, exc: BaseException) -> PoolError:
        """A search error as the error the caller gets."""
        if self._missing_index(exc):
            return PoolError(
                f"{self.entity}: its Redis Search index does not exist on redis pool "
                f"{self.redis.code!r}: run `manage.py fluxa_migrate`",
                pool=self.redis.code,
            )
        return self._unreachable(exc, f"{self.entity} search failed")

    def _refused(self, exc: redis.ResponseError) -> FluxaError:
        """A query RediSearch refused, as the caller's error: the index is missing, was
        built from another definition (``fluxa_migrate`` not run since the code changed),
        or the query itself is wrong (a ``raw()`` fragment)."""
        if self._missing_index(exc):
            return self._failed(exc)
        with contextlib.suppress(redis.RedisError, OSError):
            current = self.current()
            if current is not None and not current.startswith(f"{self.base}i:{self.version}:"):
                return PoolError(
                    f"{self.entity}: its Redis Search index on redis pool {self.redis.code!r} "
                    f"was built from another definition of the entity ({current}): run "
                    f"`manage.py fluxa_migrate` (RediSearch: {exc})",
                    pool=self.redis.code,
                )
        return FluxaError(
            f"{self.entity}: Redis Search refused the query on redis pool "
            f"{self.redis.code!r}: {exc}"
        )

    def search(
        self,
        query_string: str,
        sort: list[str],
        offset: int,
        count: int,
        ctx: Context | None = None,
    ) -> tuple[int, list[int]]:
        """``(total, ids)`` of one ``FT.SEARCH ... NOCONTENT`` on the alias."""
        args = [
            "FT.SEARCH",
            self.alias,
            query_string,
            "NOCONTENT",
            *sort,
            "VERBATIM",
            "LIMIT",
            str(offset),
            str(count),
            "DIALECT",
            "2",
        ]

        def shown() -> str:
            text = f"FT.SEARCH {self.alias} NOCONTENT {' '.join(sort)} LIMIT {offset} {count}"
            return text.replace("  ", " ")

        try:
            reply = self._logged(ctx, shown, *args)
        except redis.ResponseError as exc:
            raise self._refused(exc) from exc
        except (redis.RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        return search.parse_search(reply, self.doc_prefix)

    def all_ids(
        self, query_string: str, sort: list[str], skip: int = 0, ctx: Context | None = None
    ) -> list[int]:
        """Every match, in ``FT.SEARCH``'s order, past RediSearch's result window: read
        unsorted through a cursor (``FT.AGGREGATE ... WITHCURSOR``; a sorted aggregation
        stops at MAXAGGREGATERESULTS, 10,000 by default) with the sort field, then sorted
        here as RediSearch sorts: ascending by value, ties in index order, rows without
        a value last; descending is the exact reverse, rows without a value still last."""
        field = sort[1] if sort and sort[1] != search.ID_FIELD else None
        load = ["LOAD", "2", "@_id", f"@{field}"] if field else ["LOAD", "1", "@_id"]
        args: list[Any] = ["FT.AGGREGATE", self.alias, query_string, "VERBATIM", *load]
        args += ["WITHCURSOR", "COUNT", str(BATCH), "DIALECT", "2"]
        rows: list[tuple[int, str | None]] = []
        try:
            try:
                reply = self._logged(ctx, f"FT.AGGREGATE {self.alias} WITHCURSOR", *args)
            except redis.ResponseError as exc:
                raise self._refused(exc) from exc
            while True:
                found, cursor = _aggregate_rows(reply, field)
                rows += found
                if not cursor:
                    break
                shown = f"FT.CURSOR READ {self.alias}"
                reply = self._logged(ctx, shown, "FT.CURSOR", "READ", self.alias, cursor)
        except (redis.RedisError, OSError) as exc:
            raise self._failed(exc) from exc
        if field is None:
            ids = [id_ for id_, _ in rows]
            if sort:  # by id (the default sort)
                ids.sort(reverse=sort[2] == "DESC")
            return ids[skip:]
        numeric = any(name == field and kind == "NUMERIC" for name, _, kind, *_ in self.spec)
        present = [(id_, value) for id_, value in rows if value is not None]
        missing = [id_ for id_, value in rows if value is None]
        if numeric:
            present.sort(key=lambda row: float(row[1] or 0))
        else:
            present.sort(key=lambda row: row[1] or "")
        ordered = [id_ for id_, _ in present]
        if sort[2] == "DESC":
            ordered.reverse()
            missing.reverse()
        return (ordered + missing)[skip:]

    # -- the index -------------------------------------------------------------------------

    def info(self, name: str) -> dict[str, Any] | None:
        try:
            return search.parse_info(self._command("FT.INFO", name))
        except redis.ResponseError as exc:
            if "unknown" in str(exc).lower() or "no such" in str(exc).lower():
                return None
            raise

    def current(self) -> str | None:
        """The index the alias points at (``None``: no alias yet)."""
        found = self.info(self.alias)
        if found is None:
            return None
        return search._text(found.get("index_name", ""))

    def indexes(self) -> list[str]:
        listed = self._command("FT._LIST")
        prefix = self.base + "i:"
        return sorted(search._text(n) for n in listed if search._text(n).startswith(prefix))

    def _started(self) -> list[str]:
        """The index names of rebuilds that stopped part-way (their progress keys)."""
        marker = f"{self.base}r:"
        keys = self._client().scan_iter(match=_glob(marker) + "*", count=1000)
        return sorted(search._text(k)[len(marker) :] for k in keys)

    def plan(self, force: bool = False) -> Plan:
        current = self.current()
        ours = f"{self.base}i:{self.version}:"
        existing = self.indexes()
        started = {n for n in [*existing, *self._started()] if n.startswith(ours) and n != current}
        if started:
            name = max(started, key=_generation)
            return Plan(self.entity, self.redis.code, "resume", name, self.alias, current)
        if current is not None and current.startswith(ours) and not force:
            return Plan(self.entity, self.redis.code, "", current, self.alias, current)
        generations = [_generation(n) for n in existing if n.startswith(ours)]
        name = f"{ours}{max(generations, default=0) + 1}"
        action = "create" if current is None else "rebuild"
        return Plan(self.entity, self.redis.code, action, name, self.alias, current)

    def build(
        self, force: bool = False, progress: Callable[[int, int], None] | None = None
    ) -> Plan:
        """Build (or finish building) the index of the current definition and point the
        alias at it; with ``force`` also when it is up to date (``fluxa_reindex``).

        The documents are written from MySQL first, then the index is created over them:
        RediSearch counts a document it could not index for good (``hash_indexing_failures``
        never goes down), so an index created over an old unreadable document could never
        be switched to, even once the back-fill rewrote it."""
        plan = self.plan(force)
        if not plan.action:
            return plan
        progress_key = f"{self.base}r:{plan.index}"
        self.backfill(progress_key, progress)
        self.sweep()
        if self.info(plan.index) is None:
            self._command(
                "FT.CREATE",
                plan.index,
                "ON",
                "HASH",
                "PREFIX",
                "1",
                self.doc_prefix,
                "STOPWORDS",
                "0",
                "SCHEMA",
                *self.schema_args,
            )
        self._wait_indexed(plan.index, progress_key)
        self._command("FT.ALIASUPDATE", self.alias, plan.index)
        for old in self.indexes():
            if old != plan.index:
                self._command("FT.DROPINDEX", old)  # documents stay: they are shared
        client = self._client()
        client.delete(*[f"{self.base}r:{name}" for name in {plan.index, *self._started()}])
        return plan

    def clear(self) -> None:
        """Delete every document, counter and rebuild progress of this entity; the index
        stays (it is then empty). For tests: production code never needs it."""
        client = self._client()
        for kind in "dvr":
            cursor = 0
            while True:
                cursor, keys = client.scan(cursor, match=f"{_glob(self.base)}{kind}:*", count=1000)
                if keys:
                    client.delete(*keys)
                if not cursor:
                    break

    def drop(self) -> None:
        """Drop every index of this entity, its alias and its documents (tests, teardown)."""
        client = self._client()
        for name in self.indexes():
            self._command("FT.DROPINDEX", name)
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor, match=f"{_glob(self.base)}*", count=1000)
            if keys:
                client.delete(*keys)
            if not cursor:
                break

    def _wait_indexed(self, name: str, progress_key: str) -> None:
        deadline = time.monotonic() + INDEX_WAIT
        while True:
            info = self.info(name) or {}
            indexing = str(search._text(info.get("indexing", "0")))
            if indexing in ("0", "0.0", "False"):
                break
            if time.monotonic() > deadline:
                raise PoolError(
                    f"{self.entity}: Redis Search index {name} still indexing after "
                    f"{INDEX_WAIT:.0f} s; the alias was not switched (run the command again)",
                    pool=self.redis.code,
                )
            time.sleep(0.05)
        failures = int(search._text(info.get("hash_indexing_failures", 0)))
        if failures:
            errors = info.get("Index Errors") or info.get("index_errors") or []
            detail = search.parse_info(errors) if errors else {}
            key = search._text(detail.get("last indexing error key", "?"))
            message = search._text(detail.get("last indexing error", "?"))
            # RediSearch never lowers the count, even once the document is fixed: this
            # index can never pass the check. Dropped (its documents stay, they are the
            # current index's too), the next build starts a fresh one.
            self._command("FT.DROPINDEX", name)
            self._client().delete(progress_key)
            raise PoolError(
                f"{self.entity}: {failures} document(s) failed to index in {name} (last: key "
                f"{key}: {message}); the alias still points at the previous index and the "
                "new one was dropped: fix the document (fluxa_reindex rewrites every "
                "document from MySQL) and build again",
                pool=self.redis.code,
            )

    # -- copying MySQL into the documents ----------------------------------------------

    def _counters(self, ids: Sequence[int]) -> list[str]:
        if not ids:
            return []
        values = self._client().mget([self.counter_key(i) for i in ids])
        return ["" if v is None else search._text(v) for v in values]

    def _rows(self, ids: Sequence[int]) -> dict[int, Sequence[Any]]:
        live = f" AND `{self.fake_delete}` = 0" if self.fake_delete else ""
        sql = f"SELECT {self.columns_sql} FROM `{self.table}` WHERE `id` IN ?{live}"
        return {int(row[0]): row for row in self.mysql.query(sql, list(ids))}

    def sync(self, ids: Sequence[int]) -> list[int]:
        """Make the documents of ``ids`` equal to MySQL (a row changed meanwhile is left
        to its flush); returns the ids skipped."""
        seen = self._counters(ids)  # before the rows: see the module docstring
        rows = self._rows(ids)
        items = [
            (id_, counter, document(self.spec, rows[id_]) if id_ in rows else None)
            for id_, counter in zip(ids, seen, strict=True)
        ]
        return self.write(items)

    def backfill(
        self, progress_key: str | None = None, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Write every live row's document from MySQL, in id order, resumable from
        ``progress_key``; returns the number of rows read."""
        client = self._client()
        last = 0
        if progress_key is not None:
            stored = client.get(progress_key)
            last = int(stored) if stored is not None else 0
        total_row = self.mysql.query_row(f"SELECT COUNT(*) FROM `{self.table}`")
        total = int(total_row[0]) if total_row else 0
        done = 0
        if last:
            before = self.mysql.query_row(
                f"SELECT COUNT(*) FROM `{self.table}` WHERE `id` <= ?", last
            )
            done = int(before[0]) if before else 0
        pending: list[int] = []
        while True:
            found = self.mysql.query(
                f"SELECT `id` FROM `{self.table}` WHERE `id` > ? ORDER BY `id` LIMIT {BATCH}",
                last,
            )
            if not found:
                break
            ids = [int(r[0]) for r in found]
            pending += self.sync(ids)
            last = ids[-1]
            done += len(ids)
            if progress_key is not None:
                client.set(progress_key, last)
            if progress is not None:
                progress(done, max(total, done))
        if progress is not None and done < total:  # rows deleted meanwhile: all are done
            progress(done, done)
        self._retry(pending)
        return done

    def _retry(self, ids: list[int]) -> None:
        """Rows skipped because a flush changed them meanwhile: that flush writes them,
        unless it failed after taking its counter; try again a few times to cover it."""
        for _ in range(20):
            if not ids:
                return
            time.sleep(0.05)
            ids = self.sync(ids)
        if ids:
            log.info(
                "fluxa: %d document(s) of %s are being written by flushes; left to them",
                len(ids),
                self.entity,
            )

    def sweep(self) -> int:
        """Remove documents of rows that are gone or soft-deleted; returns how many."""
        client = self._client()
        removed = 0
        cursor = 0
        skipped: list[int] = []
        while True:
            cursor, keys = client.scan(cursor, match=f"{_glob(self.doc_prefix)}*", count=BATCH)
            ids = []
            for key in keys:
                tail = search._text(key)[len(self.doc_prefix) :]
                if tail.isdigit():
                    ids.append(int(tail))
            if ids:
                seen = self._counters(ids)
                rows = self._rows(ids)
                gone = [(i, c, None) for i, c in zip(ids, seen, strict=True) if i not in rows]
                skipped += self.write(gone)
                removed += len(gone)
            if not cursor:
                break
        self._retry(skipped)
        return removed


def _generation(name: str) -> int:
    """The generation of an index name (``...:i:<definition hash>:<generation>``)."""
    tail = name.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _glob(text: str) -> str:
    """``text`` with the glob characters of SCAN MATCH escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _aggregate_rows(
    reply: Any, field: str | None = None
) -> tuple[list[tuple[int, str | None]], int]:
    """``([(id, value of field)], cursor)`` of an ``FT.AGGREGATE ... WITHCURSOR`` reply
    (RESP2 or RESP3; the value ``None`` when the row has none)."""
    if isinstance(reply, list) and len(reply) == 2 and not isinstance(reply[1], list | dict):
        body, cursor = reply
    else:
        body, cursor = reply, 0
    if isinstance(body, dict):
        found = [search.get(row, "extra_attributes", {}) for row in search.get(body, "results", [])]
    else:
        found = [dict(zip(row[::2], row[1::2], strict=False)) for row in body[1:]]
    rows: list[tuple[int, str | None]] = []
    for attributes in found:
        id_ = search.get(attributes, "_id")
        if id_ is None:
            continue
        value = search.get(attributes, field) if field else None
        rows.append((int(search._text(id_)), None if value is None else search._text(value)))
    return rows, int(cursor)


def for_schema(engine: Engine, schema: EntitySchema) -> SearchIndex:
    """The index of a registered entity, from its definition (migrate, reindex, tests)."""
    from fluxa_django.runtime.namespace import database_identity

    if schema.redis_search is None:
        raise TypeError(f"{schema.name} has no searchable field")
    redis_pool = engine.redis(schema.redis_search)
    if not redis_pool.features.has_search:
        # Unknown when the pool was unreachable at start: asked now (an unreachable pool
        # is said to be one, not to lack the module)
        redis_pool.connect()
    if not redis_pool.features.has_search:
        raise PoolError(
            f"redis pool {schema.redis_search!r} has no search module (RediSearch), which "
            f"entity {schema.name} needs for its searchable fields: use Redis 8.2+ or "
            "Redis Stack",
            pool=schema.redis_search,
        )
    mysql = engine.mysql(schema.mysql_pool)
    return SearchIndex(
        entity=schema.name,
        table=schema.table,
        spec=spec_of(schema),
        redis_pool=redis_pool,
        mysql=mysql,
        identity=database_identity(mysql),
        app_name=str(engine.option("app_name") or ""),
        columns_sql=",".join(f"`{c.name}`" for c in schema.columns),
        fake_delete="fake_delete" if schema.fake_delete else None,
    )
