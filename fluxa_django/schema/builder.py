"""Turns entity definition classes into validated ``EntitySchema`` objects.

No network I/O: pools are known from the registry's configuration only, so the
same code serves ``validate()``, code generation and Django system checks.
Every problem becomes a ``DefinitionError`` naming the entity and field.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fluxa_django.errors import DefinitionError
from fluxa_django.inttypes import IntWidth
from fluxa_django.schema.definition import Entity, FieldOptions, Reference, References
from fluxa_django.schema.model import (
    ColumnSchema,
    ColumnType,
    EntitySchema,
    FieldKind,
    IndexSchema,
    TableOptions,
    quote_literal,
)

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FAKE_DELETE_FIELD = "fake_delete"
FAKE_DELETE_INDEX = "FakeDelete"
META_OPTIONS = frozenset(
    {
        "table",
        "mysql",
        "redis_cache",
        "local_cache",
        "unique_indexes",
        "cached_unique_indexes",
        "indexes",
        "redis_search",
        "debezium",
    }
)
INT64 = IntWidth(64, False)
_INT_SQL = {8: "tinyint", 16: "smallint", 24: "mediumint", 32: "int", 64: "bigint"}
_SEARCHABLE_KINDS = frozenset(
    {
        FieldKind.ID,
        FieldKind.INT,
        FieldKind.BOOL,
        FieldKind.FLOAT,
        FieldKind.STR,
        FieldKind.DATE,
        FieldKind.DATETIME,
        FieldKind.ENUM,
        FieldKind.SET,
        FieldKind.REFERENCE,
    }
)
# Tags that apply to each kind (``required``, ``ignore``, ``searchable`` and
# ``sortable`` are checked separately).
_KIND_TAGS: dict[FieldKind, frozenset[str]] = {
    FieldKind.INT: frozenset({"mediumint"}),
    FieldKind.FLOAT: frozenset({"decimal", "precision", "unsigned"}),
    FieldKind.STR: frozenset({"length", "enum", "set"}),
    FieldKind.BYTES: frozenset({"mediumblob", "longblob"}),
}
_ALWAYS_TAGS = frozenset({"required", "ignore", "searchable", "sortable"})
# How Redis Search indexes each kind (strings: TEXT, or as asked with searchable=)
_SEARCH_TYPES = {
    FieldKind.ID: "NUMERIC",  # ids sort and compare as numbers (a TAG sorted 10 before 9)
    FieldKind.INT: "NUMERIC",
    FieldKind.BOOL: "NUMERIC",
    FieldKind.FLOAT: "NUMERIC",
    FieldKind.DATE: "NUMERIC",
    FieldKind.DATETIME: "NUMERIC",
    FieldKind.ENUM: "TAG",
    FieldKind.SET: "TAG",
    FieldKind.REFERENCE: "NUMERIC",
    FieldKind.STR: "TEXT",
}
_STR_SEARCH = {True: "TEXT", "text": "TEXT", "tag": "TAG", "both": "TEXT+TAG"}


def _search_type(kind: FieldKind, searchable: Any) -> str | None:
    if not searchable:
        return None
    if kind is FieldKind.STR:
        return _STR_SEARCH[searchable]
    return _SEARCH_TYPES[kind]


@dataclass(frozen=True)
class PoolCatalog:
    """The pool codes the registry knows, by kind (``None`` = do not check)."""

    mysql: Mapping[str, TableOptions] | None = None
    redis: frozenset[str] | None = None
    local_cache: frozenset[str] | None = None
    kafka: frozenset[str] | None = None
    redis_db: Mapping[str, int] | None = None  # the database number of each Redis pool
    default_table_options: TableOptions = field(
        default_factory=lambda: TableOptions("utf8mb4", "utf8mb4_unicode_520_ci")
    )

    def table_options(self, pool: str) -> TableOptions:
        if self.mysql is not None and pool in self.mysql:
            return self.mysql[pool]
        return self.default_table_options


@dataclass
class _Draft:
    """A field after type analysis, before references are resolved."""

    name: str
    kind: FieldKind
    nullable: bool
    options: FieldOptions
    int_width: IntWidth | None = None
    enum_values: tuple[str, ...] = ()
    enum_class: type[enum.StrEnum] | None = None
    target: type[Entity] | None = None


_TEXT_TYPES = frozenset({"mediumtext", "text", "blob", "mediumblob", "longblob"})


class SchemaBuilder:
    """Builds the schemas of a set of entity classes, collecting every error."""

    def __init__(self, entities: Iterable[type[Entity]], pools: PoolCatalog | None = None) -> None:
        self.entities = list(dict.fromkeys(entities))
        self.pools = pools or PoolCatalog()
        self.errors: list[DefinitionError] = []
        # fields whose annotation cannot be resolved (E019), per entity
        self._unresolved: dict[type[Entity], set[str]] = {}
        # entities whose Meta had errors: checked on, not built
        self._bad_meta: set[type[Entity]] = set()

    # -- public ---------------------------------------------------------------

    def build(self) -> dict[type[Entity], EntitySchema]:
        drafts: dict[type[Entity], list[_Draft]] = {}
        for cls in self.entities:
            fields = self._analyse_fields(cls)
            if fields is not None:
                drafts[cls] = fields
        schemas: dict[type[Entity], EntitySchema] = {}
        for cls, fields in drafts.items():
            unresolved = self._unresolved.get(cls)
            before = len(self.errors)
            schema = self._build_entity(cls, fields, drafts)
            if cls in self._bad_meta:
                schema = None
            if unresolved:
                # Checked for its other errors, but not built; an index or option naming
                # the unresolved field is not reported again as an unknown column.
                self.errors[before:] = [
                    e
                    for e in self.errors[before:]
                    if not any(f"'{name}'" in str(e) for name in unresolved)
                ]
                continue
            if schema is not None:
                schemas[cls] = schema
        self._check_tables(schemas.values())
        return schemas

    # -- helpers ----------------------------------------------------------------

    def _error(self, code: str, cls: type, message: str, fname: str = "") -> None:
        where = f"entity {cls.__name__}" + (f" field {fname}" if fname else "")
        self.errors.append(
            DefinitionError(f"{where}: {message}", code=code, entity=cls.__name__, field=fname)
        )

    def _annotations(self, cls: type[Entity]) -> dict[str, Any] | None:
        """Resolved annotations in declaration order, base classes first."""
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            if klass is Entity or not (isinstance(klass, type) and issubclass(klass, Entity)):
                continue
            for name in inspect.get_annotations(klass):
                if name not in names:
                    names.append(name)
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:  # NameError for an unknown forward reference
            hints = self._field_by_field(cls, names)
        return {name: hints[name] for name in names if not name.startswith("_") and name in hints}

    def _field_by_field(self, cls: type[Entity], names: list[str]) -> dict[str, Any]:
        """Resolve each annotation on its own: one that cannot be resolved is reported
        (E019) and leaves the others to be checked, so it hides no other error."""
        hints: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass is Entity or not (isinstance(klass, type) and issubclass(klass, Entity)):
                continue
            namespace = {k: v for k, v in vars(klass).items() if not k.startswith("__")}
            for name, annotation in inspect.get_annotations(klass).items():
                if name in hints or name not in names:
                    continue
                probe = type(
                    klass.__name__,
                    (),
                    {
                        **namespace,
                        "__annotations__": {name: annotation},
                        "__module__": klass.__module__,
                    },
                )
                try:
                    hints[name] = typing.get_type_hints(probe, include_extras=True)[name]
                except Exception as exc:
                    self._error("E019", cls, f"annotation cannot be resolved ({exc})", name)
                    self._unresolved.setdefault(cls, set()).add(name)
        return hints

    def _options(self, cls: type[Entity], name: str) -> FieldOptions:
        value = getattr(cls, name, None)
        if isinstance(value, FieldOptions):
            return value
        if value is not None:
            self._error("E015", cls, "a default value is not supported; use field(...)", name)
        return FieldOptions()

    # -- field analysis ----------------------------------------------------------

    def _analyse_fields(self, cls: type[Entity]) -> list[_Draft] | None:
        hints = self._annotations(cls)
        if hints is None:
            return None
        fields: list[_Draft] = []
        for name, hint in hints.items():
            if typing.get_origin(hint) is typing.ClassVar:
                continue
            options = self._options(cls, name)
            if options.ignore:
                continue
            if not IDENTIFIER.match(name):
                self._error("E020", cls, "is not a valid column name", name)
                continue
            draft = self._analyse(cls, name, hint, options)
            if draft is not None:
                fields.append(draft)
        if not fields or fields[0].name != "id":
            self._error("E011", cls, "the first field must be `id` (an unsigned int type)", "id")
            return None
        id_field = fields[0]
        if (
            id_field.kind is not FieldKind.INT
            or id_field.int_width is None
            or not id_field.int_width.unsigned
            or id_field.nullable
        ):
            self._error("E012", cls, "must be an unsigned, non-nullable int (uint8..uint64)", "id")
            return None
        id_field.kind = FieldKind.ID
        for draft in fields[1:]:
            if draft.name == FAKE_DELETE_FIELD:
                if draft.kind is not FieldKind.BOOL or draft.nullable:
                    self._error("E030", cls, "must be annotated `bool` (not nullable)", draft.name)
                    return None
                draft.kind = FieldKind.FAKE_DELETE
                draft.int_width = id_field.int_width
        return fields

    def _analyse(
        self, cls: type[Entity], name: str, hint: Any, opts: FieldOptions
    ) -> _Draft | None:
        nullable = False
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(args) != 1 or len(typing.get_args(hint)) != 2:
                self._error("E010", cls, f"type {hint!r} is not supported (only `X | None`)", name)
                return None
            nullable, hint = True, args[0]
        if nullable and opts.required:
            self._error("E013", cls, "`required=True` contradicts the `| None` annotation", name)
            return None
        draft = self._kind_of(cls, name, hint, opts, nullable)
        if draft is None:
            return None
        allowed = _ALWAYS_TAGS | _KIND_TAGS.get(draft.kind, frozenset())
        if draft.kind in (FieldKind.ENUM, FieldKind.SET):
            allowed = _ALWAYS_TAGS | {draft.kind.value}
        wrong = [tag for tag in opts.given() if tag not in allowed]
        if wrong:
            self._error("E015", cls, f"tag {wrong[0]!r} does not apply to {hint!r}", name)
            return None
        if opts.sortable and not opts.searchable:
            self._error("E029", cls, "`sortable` needs `searchable`", name)
            return None
        if opts.searchable and draft.kind not in _SEARCHABLE_KINDS:
            self._error("E029", cls, f"{draft.kind.value} fields cannot be searchable", name)
            return None
        if opts.searchable not in (True, False, "text", "tag", "both"):
            self._error(
                "E029",
                cls,
                f"searchable must be True, 'text', 'tag' or 'both', got {opts.searchable!r}",
                name,
            )
            return None
        if opts.searchable in ("text", "tag", "both") and draft.kind is not FieldKind.STR:
            self._error(
                "E029",
                cls,
                f"searchable={opts.searchable!r} applies to str fields only "
                f"({draft.kind.value} fields are indexed as "
                f"{_SEARCH_TYPES.get(draft.kind, 'NUMERIC')})",
                name,
            )
            return None
        if not self._check_tags(cls, draft):
            return None
        return draft

    def _kind_of(
        self, cls: type[Entity], name: str, hint: Any, opts: FieldOptions, nullable: bool
    ) -> _Draft | None:
        def draft(kind: FieldKind, **kw: Any) -> _Draft:
            return _Draft(name=name, kind=kind, nullable=nullable, options=opts, **kw)

        origin = typing.get_origin(hint)
        if origin is typing.Annotated:
            base, *extras = typing.get_args(hint)
            widths = [e for e in extras if isinstance(e, IntWidth)]
            if base is int and len(widths) == 1:
                width = widths[0]
                if opts.mediumint:
                    if width.bits != 32:
                        self._error("E015", cls, "`mediumint` applies to int32/uint32 only", name)
                        return None
                    width = IntWidth(24, width.unsigned)
                return draft(FieldKind.INT, int_width=width)
            self._error("E010", cls, f"type {hint!r} is not supported", name)
            return None
        if origin in (Reference, References):
            (target,) = typing.get_args(hint)
            if not (isinstance(target, type) and issubclass(target, Entity)):
                self._error("E018", cls, f"{target!r} is not an Entity class", name)
                return None
            kind = FieldKind.REFERENCE if origin is Reference else FieldKind.REFERENCES
            return draft(kind, target=target)
        if origin is set:
            (member,) = typing.get_args(hint) or (None,)
            if isinstance(member, type) and issubclass(member, enum.StrEnum):
                return draft(FieldKind.SET, enum_class=member, enum_values=_enum_values(member))
            self._error("E010", cls, f"type {hint!r} is not supported (use set[StrEnum])", name)
            return None
        if hint is bool:
            return draft(FieldKind.BOOL)
        if hint is int:
            return draft(FieldKind.INT, int_width=INT64)
        if hint is float:
            return draft(FieldKind.FLOAT)
        if hint is bytes:
            return draft(FieldKind.BYTES)
        if hint is datetime.datetime:
            return draft(FieldKind.DATETIME)
        if hint is datetime.date:
            return draft(FieldKind.DATE)
        if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
            return draft(FieldKind.ENUM, enum_class=hint, enum_values=_enum_values(hint))
        if hint is str:
            if opts.enum is not None and opts.set is not None:
                self._error("E015", cls, "`enum` and `set` cannot be combined", name)
                return None
            if opts.enum is not None:
                return draft(FieldKind.ENUM, enum_values=opts.enum)
            if opts.set is not None:
                return draft(FieldKind.SET, enum_values=opts.set)
            return draft(FieldKind.STR)
        hints = {
            decimal.Decimal: "use `float` with field(decimal=(precision, scale))",
            datetime.time: "store a time as `int` seconds or a `str`",
            dict: "store JSON as `str` (field(length='max'))",
            list: "use References[X] for ids, or a `str` holding JSON",
        }
        advice = hints.get(hint if isinstance(hint, type) else typing.get_origin(hint))
        shown = f"type {hint!r} is not supported" + (f": {advice}" if advice else "")
        self._error("E010", cls, shown, name)
        return None

    def _check_tags(self, cls: type[Entity], d: _Draft) -> bool:
        o = d.options
        if d.kind is FieldKind.STR and o.length is not None:
            valid = o.length == "max" or (
                isinstance(o.length, int)
                and not isinstance(o.length, bool)
                and 0 < o.length <= 65535
            )
            if not valid:
                self._error("E014", cls, f"length {o.length!r} must be 1..65535 or 'max'", d.name)
                return False
        if d.kind in (FieldKind.ENUM, FieldKind.SET):
            values = d.enum_values
            if not values or len(set(values)) != len(values):
                self._error("E016", cls, "enum/set values must be distinct and non-empty", d.name)
                return False
            for value in values:
                if (
                    not isinstance(value, str)
                    or not value
                    or (d.kind is FieldKind.SET and "," in value)
                ):
                    self._error("E016", cls, f"invalid enum/set value {value!r}", d.name)
                    return False
            if d.kind is FieldKind.SET and len(values) > 64:
                self._error("E016", cls, "a MySQL SET holds at most 64 values", d.name)
                return False
        if d.kind is FieldKind.FLOAT:
            if o.decimal is not None:
                ok = (
                    len(o.decimal) == 2
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in o.decimal)
                    and 1 <= o.decimal[0] <= 65
                    and 0 <= o.decimal[1] <= min(30, o.decimal[0])
                )
                if not ok:
                    self._error(
                        "E017",
                        cls,
                        f"decimal {o.decimal!r} must be (p, s), 1<=p<=65, 0<=s<=min(p,30)",
                        d.name,
                    )
                    return False
            if o.precision is not None and not (
                isinstance(o.precision, int) and 0 <= o.precision <= 30
            ):
                self._error("E017", cls, f"precision {o.precision!r} must be 0..30", d.name)
                return False
        if d.kind is FieldKind.BYTES and o.mediumblob and o.longblob:
            self._error("E015", cls, "`mediumblob` and `longblob` cannot be combined", d.name)
            return False
        return True

    # -- entity assembly ---------------------------------------------------------

    def _meta(self, cls: type[Entity]) -> dict[str, Any] | None:
        meta = cls.__dict__.get("Meta")
        if meta is None:
            # Inherit Meta from an abstract base definition, if any.
            meta = getattr(cls, "Meta", None)
        values = {k: v for k, v in vars(meta).items() if not k.startswith("_")} if meta else {}
        for option in sorted(set(values) - META_OPTIONS):
            self._error("E021", cls, f"unknown Meta option {option!r}")
            self._bad_meta.add(cls)
            del values[option]
        checks: dict[str, tuple[type, ...]] = {
            "table": (str,),
            "mysql": (str,),
            "redis_cache": (bool, str),
            "local_cache": (bool, str),
            "redis_search": (str,),
            "debezium": (bool, str),
            "unique_indexes": (dict,),
            "cached_unique_indexes": (dict,),
            "indexes": (dict,),
        }
        for key, value in list(values.items()):
            if not isinstance(value, checks[key]):
                self._error("E021", cls, f"Meta.{key} has the wrong type {type(value).__name__}")
                self._bad_meta.add(cls)
                del values[key]
        return values

    def _build_entity(
        self, cls: type[Entity], fields: list[_Draft], drafts: Mapping[type[Entity], list[_Draft]]
    ) -> EntitySchema | None:
        meta = self._meta(cls)
        if meta is None:
            return None
        table = meta.get("table", cls.__name__)
        if not IDENTIFIER.match(table):
            self._error("E020", cls, f"table name {table!r} is not a valid identifier")
            return None
        mysql_pool = meta.get("mysql", "default")
        redis_cache = _pool_flag(meta.get("redis_cache"), "default")
        local_cache = _pool_flag(meta.get("local_cache"), mysql_pool)
        debezium = _pool_flag(meta.get("debezium"), "default")
        searchable = any(f.options.searchable for f in fields)
        redis_search = meta.get("redis_search", "default") if searchable else None
        ok = self._check_pool(cls, "mysql", mysql_pool, self.pools.mysql)
        ok &= self._check_pool(cls, "redis", redis_cache, self.pools.redis)
        ok &= self._check_pool(cls, "redis", redis_search, self.pools.redis)
        search_db = (self.pools.redis_db or {}).get(redis_search or "")
        if search_db:  # RediSearch refuses FT.CREATE on any database but 0
            self._error(
                "E032",
                cls,
                f"Redis Search needs database 0, but redis pool {redis_search!r} uses "
                f"database {search_db} (RediSearch indexes only database 0: give the "
                "search index a pool on database 0 with Meta.redis_search)",
            )
            ok = False
        ok &= self._check_pool(cls, "local cache", local_cache, self.pools.local_cache)
        ok &= self._check_pool(cls, "kafka", debezium, self.pools.kafka)
        table_options = self.pools.table_options(mysql_pool)
        columns: list[ColumnSchema] = []
        for position, draft in enumerate(fields):
            column = self._column(cls, draft, position, table_options, drafts)
            if column is None:
                return None
            columns.append(column)
        indexes = self._indexes(cls, meta, {c.name: c for c in columns})
        if indexes is None or not ok:
            return None
        return EntitySchema(
            name=cls.__name__,
            cls=cls,
            table=table,
            mysql_pool=mysql_pool,
            columns=tuple(columns),
            indexes=indexes,
            table_options=table_options,
            redis_cache=redis_cache,
            local_cache=local_cache,
            redis_search=redis_search,
            debezium=debezium,
            fake_delete=any(c.kind is FieldKind.FAKE_DELETE for c in columns),
        )

    def _check_pool(self, cls: type, kind: str, code: str | None, known: Any) -> bool:
        if code is None or known is None or code in known:
            return True
        self._error("E027", cls, f"{kind} pool {code!r} is not registered")
        return False

    def _column(
        self,
        cls: type[Entity],
        d: _Draft,
        position: int,
        table: TableOptions,
        drafts: Mapping[type[Entity], list[_Draft]],
    ) -> ColumnSchema | None:
        o = d.options
        text = {"charset": table.charset, "collation": table.collation}

        def ct(sql: str, zero: str | None, *, charset: bool = False) -> ColumnType:
            extra: dict[str, Any] = text if charset else {}
            if d.nullable:
                return ColumnType(sql, True, True, None, **extra)
            return ColumnType(sql, False, zero is not None, zero, **extra)

        kw: dict[str, Any] = {
            "searchable": bool(o.searchable),
            "sortable": o.sortable,
            "search_type": _search_type(d.kind, o.searchable),
        }
        kind = d.kind
        if kind is FieldKind.ID:
            assert d.int_width is not None
            ctype = ColumnType(_int_sql(d.int_width), False, False, None)
            kw["int_width"] = d.int_width
        elif kind in (FieldKind.INT, FieldKind.FAKE_DELETE):
            assert d.int_width is not None
            ctype = ct(_int_sql(d.int_width), "0")
            kw["int_width"] = d.int_width
        elif kind is FieldKind.BOOL:
            ctype = ct("tinyint(1)", "0")
        elif kind is FieldKind.FLOAT:
            unsigned = " unsigned" if o.unsigned else ""
            if o.decimal is not None:
                p, s = o.decimal
                zero = "0." + "0" * s if s else "0"
                ctype = ct(f"decimal({p},{s}){unsigned}", zero)
                kw["decimal"] = (p, s)
            else:
                ctype = ct(f"double{unsigned}", "0")
            kw["precision"] = o.precision
            kw["unsigned"] = o.unsigned
        elif kind is FieldKind.STR:
            if o.length == "max":
                ctype = ct("mediumtext", "", charset=True)
            else:
                length = o.length if isinstance(o.length, int) else 255
                ctype = ct(f"varchar({length})", "", charset=True)
                kw["length"] = length
        elif kind is FieldKind.BYTES:
            sql = "longblob" if o.longblob else "mediumblob" if o.mediumblob else "blob"
            ctype = ct(sql, "")
        elif kind is FieldKind.DATE:
            ctype = ct("date", "0001-01-01")
        elif kind is FieldKind.DATETIME:
            ctype = ct("datetime", "1000-01-01 00:00:00")
        elif kind in (FieldKind.ENUM, FieldKind.SET):
            values = ",".join(quote_literal(v) for v in d.enum_values)
            zero = d.enum_values[0] if kind is FieldKind.ENUM else ""
            ctype = ct(f"{kind.value}({values})", zero, charset=True)
            kw["enum_values"] = d.enum_values
            kw["enum_class"] = d.enum_class
        elif kind is FieldKind.REFERENCE:
            assert d.target is not None
            target = drafts.get(d.target)
            if target is None:
                registered = d.target in self.entities
                why = "has an invalid definition" if registered else "is not registered"
                self._error("E018", cls, f"referenced entity {d.target.__name__} {why}", d.name)
                return None
            width = target[0].int_width
            assert width is not None
            ctype = ct(_int_sql(width), "0")
            kw["int_width"] = width
            kw["reference"] = d.target.__name__
        else:  # REFERENCES
            assert d.target is not None
            if d.target not in drafts:
                self._error(
                    "E018", cls, f"referenced entity {d.target.__name__} is not registered", d.name
                )
                return None
            ctype = ct("text", "", charset=True)
            kw["reference"] = d.target.__name__
        return ColumnSchema(name=d.name, kind=kind, definition=ctype, position=position, **kw)

    @staticmethod
    def _index_problem(
        cls: type[Entity],
        name: Any,
        cols: Any,
        columns: Mapping[str, ColumnSchema],
        found: list[IndexSchema],
    ) -> tuple[str, str, str] | None:
        """``(code, message, field)`` of the first problem of one index, or ``None``."""
        if not isinstance(name, str) or not IDENTIFIER.match(name) or name.upper() == "PRIMARY":
            return "E020", f"index name {name!r} is not a valid identifier", ""
        if name == FAKE_DELETE_INDEX and FAKE_DELETE_FIELD in columns:
            return "E020", f"index name {name!r} is reserved for soft delete", ""
        if any(i.name == name for i in found):
            return "E023", f"index name {name!r} is defined twice", ""
        if isinstance(cols, str) or not isinstance(cols, list | tuple) or not cols:
            return "E022", f"index {name!r} must list its columns", ""
        for col in cols:
            column = columns.get(col) if isinstance(col, str) else None
            if column is None:
                return "E022", f"index {name!r} names unknown column {col!r}", str(col)
            if column.definition.sql_type in _TEXT_TYPES:
                return "E026", f"index {name!r} cannot cover a text/blob column", col
        if len(set(cols)) != len(cols):
            return "E023", f"index {name!r} lists a column twice", ""
        return None

    def _indexes(
        self, cls: type[Entity], meta: Mapping[str, Any], columns: Mapping[str, ColumnSchema]
    ) -> tuple[IndexSchema, ...] | None:
        unique: dict[str, Any] = meta.get("unique_indexes", {})
        plain: dict[str, Any] = meta.get("indexes", {})
        cached: dict[str, Any] = meta.get("cached_unique_indexes", {})
        found: list[IndexSchema] = []
        bad = False  # every index is checked: one bad index hides no other error
        for is_unique, spec in ((True, unique), (False, plain)):
            for name, cols in spec.items():
                problem = self._index_problem(cls, name, cols, columns, found)
                if problem is not None:
                    code, message, fname = problem
                    self._error(code, cls, message, fname)
                    bad = True
                    continue
                cols_t = tuple(cols)
                found.append(IndexSchema(name, cols_t, is_unique, cached=name in cached))
                for other in found[:-1]:
                    if other.columns == cols_t and other.unique == is_unique:
                        self._error(
                            "E023", cls, f"indexes {other.name!r} and {name!r} are the same"
                        )
                        bad = True
        if bad:
            return None
        for name, cols in cached.items():
            if name not in unique:
                self._error(
                    "E024", cls, f"cached unique index {name!r} is not in Meta.unique_indexes"
                )
                return None
            if list(cols) != list(unique[name]):
                self._error(
                    "E024",
                    cls,
                    f"cached unique index {name!r} lists other columns than the unique index",
                )
                return None
        plain_found = [i for i in found if not i.unique]
        for a in plain_found:
            for b in plain_found:
                if a is not b and b.columns[: len(a.columns)] == a.columns:
                    self._error(
                        "E025",
                        cls,
                        f"index {a.name!r} is redundant: {b.name!r} starts with the same columns",
                    )
                    return None
        if FAKE_DELETE_FIELD in columns:
            found = [
                i
                if FAKE_DELETE_FIELD in i.columns
                else IndexSchema(i.name, (*i.columns, FAKE_DELETE_FIELD), i.unique, i.cached)
                for i in found
            ]
            if not any(i.columns[0] == FAKE_DELETE_FIELD for i in found):
                found.append(IndexSchema(FAKE_DELETE_INDEX, (FAKE_DELETE_FIELD,), False))
        return tuple(sorted(found, key=lambda i: i.name))

    def _check_tables(self, schemas: Iterable[EntitySchema]) -> None:
        seen: dict[tuple[str, str], str] = {}
        for schema in schemas:
            key = (schema.mysql_pool, schema.table)
            if key in seen:
                self._error(
                    "E028",
                    schema.cls,
                    f"table {schema.table!r} in pool {schema.mysql_pool!r} is also used by entity {seen[key]}",
                )
            else:
                seen[key] = schema.name


def _pool_flag(value: bool | str | None, default: str) -> str | None:
    if value is None or value is False:
        return None
    return default if value is True else value


def _int_sql(width: IntWidth) -> str:
    return _INT_SQL[width.bits] + (" unsigned" if width.unsigned else "")


def _enum_values(cls: type[enum.StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in cls)


def build_schemas(
    entities: Iterable[type[Entity]], pools: PoolCatalog | None = None
) -> dict[type[Entity], EntitySchema]:
    """Build every schema or raise ``DefinitionErrors`` listing all problems."""
    from fluxa_django.errors import DefinitionErrors

    builder = SchemaBuilder(entities, pools)
    schemas = builder.build()
    if builder.errors:
        raise DefinitionErrors(builder.errors)
    return schemas
