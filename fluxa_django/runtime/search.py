"""Redis Search: typed query conditions, the query builder, documents and their index.

Documents are Redis hashes ``fxs:{<ns>}:d:<id>`` holding the searchable columns of
one live row, encoded by column kind (numbers in decimal, dates and datetimes as
Unix seconds, bools ``1``/``0``, enums, sets and tag strings through ``tag_text``,
full-text strings as their words, ``text_value``; NULL: no field). The encoding
depends on the column only, never on the index, so every version of an entity's
index reads the same documents: a changed definition is a new ``FT.CREATE`` over
the same prefix, back-filled from MySQL, then the alias ``fxs:{<ns>}:a`` is
switched to it (``runtime/search_index.py``).

Ordering of concurrent writers: inside its transaction, after its statements (the
rows are locked), a flush increments ``fxs:{<ns>}:v:<id>`` of every row whose
document changes; after the commit it writes the document only while that
counter still holds its own value (a later flush of the row then writes
instead), and increments it again when it wrote. Reindexing reads the counters
before the rows and writes under the same rule without incrementing: a row
changed meanwhile is never overwritten with what was read, even when the read
saw a counter taken by a flush that had not committed yet (that flush's write
moves the counter on).

User values never reach a query unescaped: numbers are formatted from checked
numbers, tag values are encoded (``tag_text``) then escaped character by
character (everything but letters and digits gets a backslash), full-text words
are the runs of letters and digits, case-folded, exactly what the documents hold.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, overload

from typing_extensions import TypeVar

from fluxa_django.runtime.query import Pager, Unfiltered
from fluxa_django.runtime.values import utc_naive

T = TypeVar("T")
E = TypeVar("E", default=Any)
E2 = TypeVar("E2")
QE = TypeVar("QE", default=Unfiltered)

_EPOCH_DAY = datetime.date(1970, 1, 1)
_EPOCH = datetime.datetime(1970, 1, 1)  # rows hold naive UTC
TAG_SEPARATOR = "\x1f"
MIN_PREFIX = 2  # RediSearch's MINPREFIX: shorter prefixes match nothing
# Tag values are stored (and searched) encoded, see ``tag_text``.
_TAG_ESCAPE = "%"
_TAG_EMPTY = "%z"
_TAG_HASHED = "%h"
MAX_TAG_BYTES = 4096  # RediSearch cuts longer tag values (MAX_TAG_LEN): they are hashed
# Bumped when the document encoding changes: part of the index definition's hash, so
# that ``fluxa_migrate`` rebuilds (rewrites every document) after an upgrade.
ENCODING_VERSION = "2"


# -- document values (``runtime/search_index.document`` calls these) --------------------


def number_text(value: Any) -> str:
    """An int, bool, float or Decimal as the decimal text RediSearch parses."""
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def date_number(value: datetime.date) -> int:
    """A date as the Unix seconds of its midnight (UTC)."""
    return (value - _EPOCH_DAY).days * 86400


def datetime_number(value: datetime.datetime) -> int | float:
    """A naive-UTC (or aware) datetime as Unix seconds."""
    if value.tzinfo is not None:
        value = utc_naive(value, "datetime")
    delta = value - _EPOCH
    if delta.microseconds:
        return delta / datetime.timedelta(seconds=1)
    return delta.days * 86400 + delta.seconds


def date_text(value: datetime.date) -> str:
    return str(date_number(value))


def datetime_text(value: datetime.datetime) -> str:
    return number_text(datetime_number(value))


def _tag_char(char: str) -> str:
    code = ord(char)
    return f"%{code:02X}" if code < 0x100 else f"%u{code:06X}"


def tag_text(value: str) -> str:
    """A tag value as stored and searched: an injective encoding into characters that
    RediSearch keeps as they are, both when it indexes a tag and when it parses one in a
    query. Encoded (``%XX``, ``%uXXXXXX``): ``%`` itself, control characters (the tag
    separator among them: a query cannot hold them even escaped, and the indexer stops at
    NUL), characters outside ASCII that are not letters or digits (a query cannot escape
    them) and spaces at either end (the indexer trims them). The empty string is ``%z``
    (RediSearch indexes no empty tag) and a value longer than ``MAX_TAG_BYTES`` in UTF-8
    is ``%h`` and its SHA-256 (RediSearch cuts longer tags, which would make values that
    share a beginning equal)."""
    if not value:
        return _TAG_EMPTY
    if value.isascii() and value.isprintable() and _TAG_ESCAPE not in value:
        text = value  # the common case
    else:
        text = "".join(
            char
            if (char.isalnum() or (char.isascii() and char.isprintable())) and char != "%"
            else _tag_char(char)
            for char in value
        )
    if text[0] == " " or text[-1] == " ":
        start = len(text) - len(text.lstrip(" "))
        end = len(text.rstrip(" "))
        if end <= start:
            text = "%20" * len(text)
        else:
            text = "%20" * start + text[start:end] + "%20" * (len(text) - end)
    if len(text) > MAX_TAG_BYTES // 4 and len(text.encode()) > MAX_TAG_BYTES:
        return _TAG_HASHED + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return text


def tags_text(values: str) -> str:
    """A MySQL SET value (``"a,b"``) as a multi-valued tag."""
    return TAG_SEPARATOR.join(tag_text(v) for v in values.split(",")) if values else ""


def _runs(text: str) -> list[str]:
    found: list[str] = []
    current: list[str] = []
    for char in text:
        if char.isalnum():
            current.append(char)
        elif current:
            found.append("".join(current))
            current = []
    if current:
        found.append("".join(current))
    return found


def words(text: str) -> list[str]:
    """The words of a full-text value, as they are indexed and searched: runs of letters
    and digits (every other character separates words), case-folded (``str.casefold``; a
    character that folds to one that is not a letter or digit separates words too)."""
    if text.isascii():
        return _runs(text.lower())
    found: list[str] = []
    for word in _runs(text):
        found += _runs(word.casefold())
    return found


def term(word: str) -> str:
    """A word as the index holds it: characters beyond the Basic Multilingual Plane
    (mathematical letters, CJK extension B, ...) as two private-use characters each,
    since RediSearch's term trie holds 16-bit characters only (a prefix query never
    finds a term with one). Per character, so a prefix of a word is a prefix of its
    term."""
    if word.isascii() or max(word) <= "\uffff":
        return word
    out: list[str] = []
    for char in word:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            out += [chr(0xE000 + (code >> 10)), chr(0xE400 + (code & 0x3FF))]
        else:
            out.append(char)
    return "".join(out)


def text_value(text: str) -> str:
    """A full-text value as its document holds it: its words (as terms), separated by
    spaces. The indexer then sees exactly ``words(text)`` (its own tokenizer keeps ``_``,
    characters outside ASCII and backslash escapes inside words, drops control characters
    and stems): a query's words are split, folded and matched the same way."""
    return " ".join(term(w) for w in words(text))


# -- escaping ----------------------------------------------------------------------------


def escape_tag(value: str) -> str:
    """A tag value encoded (``tag_text``) and escaped for ``@f:{...}``: every character
    that is not a letter or a digit gets a backslash (an allow-list: nothing else reaches
    the parser bare)."""
    return "".join(c if c.isalnum() else "\\" + c for c in tag_text(value))


def _number(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise TypeError(f"{where}: expected a number, got {type(value).__name__}")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{where}: {value} cannot be searched (not finite)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} cannot be searched (not finite)")
    try:
        as_float = float(value)
    except OverflowError:  # an int beyond a double
        as_float = math.inf if value > 0 else -math.inf
    if math.isinf(as_float):  # beyond every value a document can hold
        return "+inf" if as_float > 0 else "-inf"
    if isinstance(value, Decimal):
        return repr(as_float) if abs(value.adjusted()) > 300 else format(value, "f")
    return number_text(int(value) if isinstance(value, int) else as_float)


# -- conditions ----------------------------------------------------------------------------


class SearchCondition(Generic[E]):
    """One Redis Search condition on entity ``E`` (combine with ``and_``, ``or_``, ``not_``).

    ``text`` is the query fragment (escaped); ``None`` matches nothing (e.g. a full-text
    match of a string without any word, or ``in_([])``).
    """

    __slots__ = ("entity", "text")

    def __init__(self, text: str | None, entity: str = "") -> None:
        self.text = text
        self.entity = entity

    def __repr__(self) -> str:
        return f"SearchCondition({self.text!r})"

    def not_(self) -> SearchCondition[E]:
        """Rows that do not match."""
        if self.text is None:
            return SearchCondition("*", self.entity)
        return SearchCondition(f"-({self.text})", self.entity)

    def and_(self, *others: SearchCondition[E]) -> SearchCondition[E]:
        """Rows matching this and every other condition."""
        parts = [self, *others]
        _same_entity(parts)
        if any(p.text is None for p in parts):
            return SearchCondition(None, self.entity)
        return SearchCondition(" ".join(f"({p.text})" for p in parts), self.entity)

    def or_(self, *others: SearchCondition[E]) -> SearchCondition[E]:
        """Rows matching this or any other condition."""
        parts = [self, *others]
        _same_entity(parts)
        texts = [p.text for p in parts if p.text is not None]
        if not texts:
            return SearchCondition(None, self.entity)
        return SearchCondition("(" + " | ".join(f"({t})" for t in texts) + ")", self.entity)


def _same_entity(parts: Sequence[SearchCondition[Any]]) -> None:
    for part in parts:
        if not isinstance(part, SearchCondition):
            raise TypeError(
                f"Redis Search conditions combine only with conditions, got {type(part).__name__}"
            )
    entities = {p.entity for p in parts if p.entity}
    if len(entities) > 1:
        raise TypeError(f"cannot combine conditions of {' and '.join(sorted(entities))}")


class SearchField(Generic[T, E]):
    """A searchable field of entity ``E`` (``Provider.fields_redis_search.<name>``)."""

    __slots__ = ("attribute", "entity", "name", "nullable", "sortable", "where")

    def __init__(
        self, name: str, *, nullable: bool = False, sortable: bool = False, entity: str = ""
    ) -> None:
        self.name = name
        self.attribute = name
        self.nullable = nullable
        self.sortable = sortable
        self.entity = entity
        self.where = f"{entity}.{name}" if entity else name

    def __set_name__(self, owner: type, attribute: str) -> None:
        entity = owner.__name__.removeprefix("_").removesuffix("SearchFields")
        if entity and not self.entity:
            self.entity = entity
            self.where = f"{entity}.{self.name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    if not TYPE_CHECKING:  # (for mypy a missing condition stays an error it reports)

        def __getattr__(self, name: str) -> Any:
            """A condition this kind of field does not have: say which ones it has."""
            if name.startswith("_"):
                raise AttributeError(name)
            conditions = sorted(
                n
                for cls in type(self).__mro__
                for n, v in vars(cls).items()
                if callable(v) and not n.startswith("_")
            )
            raise AttributeError(
                f"{self.where} ({type(self).__name__}) has no {name}(): its conditions are "
                f"{', '.join(conditions)}"
                + (
                    " (a str field needs searchable='tag' or 'both' for eq/in_)"
                    if isinstance(self, TextSearchField) and name in ("eq", "in_")
                    else ""
                )
            )

    def _make(self, text: str | None) -> SearchCondition[E]:
        return SearchCondition(text, self.entity)

    def is_null(self) -> SearchCondition[E]:
        """Rows whose value is NULL."""
        if not self.nullable:
            raise TypeError(f"{self.where}: is_null() needs a nullable field")
        return self._make(f"ismissing(@{self.attribute})")

    def is_not_null(self) -> SearchCondition[E]:
        if not self.nullable:
            raise TypeError(f"{self.where}: is_not_null() needs a nullable field")
        return self._make(f"-ismissing(@{self.attribute})")


class NumericSearchField(SearchField[T, E]):
    """A NUMERIC field: ids, references, ints, floats, decimals, bools, dates and datetimes."""

    __slots__ = ("kind", "target")

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        nullable: bool = False,
        sortable: bool = False,
        entity: str = "",
        target: str = "",
    ) -> None:
        super().__init__(name, nullable=nullable, sortable=sortable, entity=entity)
        self.kind = kind  # "int", "ref", "float", "bool", "date" or "datetime"
        self.target = target  # a reference's entity

    def _value(self, value: Any) -> str:
        kind = self.kind
        if kind == "ref":
            return str(self._id(value))
        if kind == "bool":
            if not isinstance(value, bool | int) or value not in (0, 1):
                raise TypeError(f"{self.where}: expected a bool, got {value!r}")
            return "1" if value else "0"
        if kind == "datetime":
            if not isinstance(value, datetime.datetime):
                raise TypeError(f"{self.where}: expected a datetime, got {type(value).__name__}")
            return number_text(datetime_number(utc_naive(value, self.where)))
        if kind == "date":
            if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
                raise TypeError(f"{self.where}: expected a date, got {type(value).__name__}")
            return str(date_number(value))
        if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
            raise TypeError(f"{self.where}: expected an int, got {type(value).__name__}")
        return _number(value, self.where)

    def _id(self, value: Any) -> int:
        """The id a reference condition compares with: an int, or an entity of the target."""
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        provider = getattr(type(value), "_provider", None)
        name = getattr(provider, "entity_name", None)
        if name is None or not hasattr(value, "_row"):
            raise TypeError(
                f"{self.where}: expected an id or a {self.target}, got {type(value).__name__}"
            )
        if self.target and name != self.target:
            raise TypeError(f"{self.where}: references {self.target}, got a {name}")
        found: int = value._row[0]
        return found

    def _range(self, low: str, high: str) -> SearchCondition[E]:
        return self._make(f"@{self.attribute}:[{low} {high}]")

    def eq(self, value: T) -> SearchCondition[E]:
        text = self._value(value)
        return self._range(text, text)

    def in_(self, values: Iterable[T]) -> SearchCondition[E]:
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise TypeError(f"{self.where}: in_() takes a list of values")
        texts = sorted({self._value(v) for v in values})
        if not texts:
            return self._make(None)
        return self._make("(" + " | ".join(f"@{self.attribute}:[{t} {t}]" for t in texts) + ")")

    def gt(self, value: T) -> SearchCondition[E]:
        return self._range(f"({self._value(value)}", "+inf")

    def gte(self, value: T) -> SearchCondition[E]:
        return self._range(self._value(value), "+inf")

    def lt(self, value: T) -> SearchCondition[E]:
        return self._range("-inf", f"({self._value(value)}")

    def lte(self, value: T) -> SearchCondition[E]:
        return self._range("-inf", self._value(value))

    def between(
        self, low: T, high: T, *, low_inclusive: bool = True, high_inclusive: bool = True
    ) -> SearchCondition[E]:
        """``low <= value <= high`` (each bound exclusive when asked)."""
        lo, hi = self._value(low), self._value(high)
        return self._range(lo if low_inclusive else f"({lo}", hi if high_inclusive else f"({hi}")


class TagSearchField(SearchField[T, E]):
    """A TAG field: exact match of enums, sets (contains) and tag strings."""

    __slots__ = ("kind", "members")

    def __init__(
        self,
        name: str,
        kind: str,
        *,
        nullable: bool = False,
        sortable: bool = False,
        entity: str = "",
        attribute: str | None = None,
        members: Iterable[str] = (),
    ) -> None:
        super().__init__(name, nullable=nullable, sortable=sortable, entity=entity)
        self.kind = kind  # "str", "enum", "int"
        self.members = frozenset(members)  # an enum's or a set's values (empty: any str)
        if attribute is not None:
            self.attribute = attribute

    def _value(self, value: Any) -> str:
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                entity_id = getattr(value, "id", None)  # a referenced entity
                if isinstance(entity_id, int) and hasattr(value, "_row"):
                    value = entity_id
                else:
                    raise TypeError(f"{self.where}: expected an int id, got {type(value).__name__}")
            return escape_tag(str(int(value)))
        if isinstance(value, enum.Enum):
            value = value.value
        if not isinstance(value, str):
            raise TypeError(f"{self.where}: expected a str, got {type(value).__name__}")
        if self.members and value not in self.members:
            allowed = ", ".join(sorted(self.members))
            raise ValueError(f"{self.where}: {value!r} is not one of its values ({allowed})")
        return escape_tag(str(value[:]))

    def eq(self, value: T) -> SearchCondition[E]:
        """Rows whose value is ``value`` (for a set field: whose set contains it)."""
        return self._make(f"@{self.attribute}:{{{self._value(value)}}}")

    def in_(self, values: Iterable[T]) -> SearchCondition[E]:
        """Rows whose value is one of ``values`` (set fields: contains any of them)."""
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise TypeError(f"{self.where}: in_() takes a list of values")
        texts = sorted({self._value(v) for v in values})
        if not texts:
            return self._make(None)
        return self._make(f"@{self.attribute}:{{{' | '.join(texts)}}}")


class TextSearchField(SearchField[str, E]):
    """A TEXT field: full-text ``match`` (words, case-insensitive, with optional prefix)."""

    __slots__ = ()

    def match(self, text: str, *, prefix: bool = False) -> SearchCondition[E]:
        """Rows whose text holds every word of ``text`` (with ``prefix``: words starting
        so; a word shorter than 2 characters then matches whole). Punctuation separates
        words, as when the text was indexed; a text without any word matches nothing."""
        if not isinstance(text, str):
            raise TypeError(f"{self.where}: match() takes a str, got {type(text).__name__}")
        found = words(text[:])
        if not found:
            return self._make(None)
        terms = [term(w) + "*" if prefix and len(w) >= MIN_PREFIX else term(w) for w in found]
        return self._make(f"@{self.attribute}:({' '.join(terms)})")


class TextTagSearchField(TextSearchField[E]):
    """A str field indexed both ways (``searchable="both"``): ``match`` and exact ``eq``/``in_``."""

    __slots__ = ("_tag",)

    def __init__(
        self, name: str, *, nullable: bool = False, sortable: bool = False, entity: str = ""
    ) -> None:
        super().__init__(name, nullable=nullable, sortable=sortable, entity=entity)
        self._tag: TagSearchField[str, E] = TagSearchField(
            name, "str", nullable=nullable, entity=entity, attribute=f"{name}__tag"
        )

    def __set_name__(self, owner: type, attribute: str) -> None:
        super().__set_name__(owner, attribute)
        self._tag.entity, self._tag.where = self.entity, self.where

    def eq(self, value: str) -> SearchCondition[E]:
        return self._tag.eq(value)

    def in_(self, values: Iterable[str]) -> SearchCondition[E]:
        return self._tag.in_(values)


# -- the query ----------------------------------------------------------------------------


class RedisSearchQuery(Generic[QE]):
    """A Redis Search query: conditions AND-ed, one sort field, a page.

    ``RedisSearchQuery()`` is unbound; its first condition or sort field binds it to
    that entity for mypy (``RedisSearchQuery[ProductEntity]()`` starts bound).
    """

    __slots__ = ("_conditions", "_pager", "_raw", "_sort")

    def __init__(self) -> None:
        self._conditions: list[SearchCondition[Any]] = []
        self._raw: list[str] = []
        self._sort: tuple[SearchField[Any, Any], bool] | None = None
        self._pager: Pager | None = None

    def __repr__(self) -> str:
        return f"RedisSearchQuery({self.query_string()!r}, pager={self._pager!r})"

    @overload
    def filter(
        self: RedisSearchQuery[Unfiltered], *conditions: SearchCondition[E2]
    ) -> RedisSearchQuery[E2]: ...
    @overload
    def filter(self, *conditions: SearchCondition[QE]) -> RedisSearchQuery[QE]: ...
    def filter(self, *conditions: SearchCondition[Any]) -> RedisSearchQuery[Any]:
        for condition in conditions:
            if not isinstance(condition, SearchCondition):
                raise TypeError(
                    "RedisSearchQuery.filter takes conditions from "
                    f"Provider.fields_redis_search, got {type(condition).__name__}"
                )
            self._conditions.append(condition)
        return self

    def raw(self, query: str) -> RedisSearchQuery[QE]:
        """The escape hatch: AND a RediSearch query fragment **as written** (never put
        user input in it; conditions escape it for you)."""
        if not isinstance(query, str) or not query.strip():
            raise TypeError("RedisSearchQuery.raw takes a non-empty query string")
        self._raw.append(query)
        return self

    @overload
    def sort_by_asc(
        self: RedisSearchQuery[Unfiltered], field: SearchField[Any, E2]
    ) -> RedisSearchQuery[E2]: ...
    @overload
    def sort_by_asc(self, field: SearchField[Any, QE]) -> RedisSearchQuery[QE]: ...
    def sort_by_asc(self, field: SearchField[Any, Any]) -> RedisSearchQuery[Any]:
        self._sort = (self._sorting(field), True)
        return self

    @overload
    def sort_by_desc(
        self: RedisSearchQuery[Unfiltered], field: SearchField[Any, E2]
    ) -> RedisSearchQuery[E2]: ...
    @overload
    def sort_by_desc(self, field: SearchField[Any, QE]) -> RedisSearchQuery[QE]: ...
    def sort_by_desc(self, field: SearchField[Any, Any]) -> RedisSearchQuery[Any]:
        self._sort = (self._sorting(field), False)
        return self

    def _sorting(self, field: Any) -> SearchField[Any, Any]:
        found = _sortable(field)
        if self._sort is not None:
            raise TypeError(
                f"RedisSearchQuery sorts by one field (RediSearch's SORTBY takes one): "
                f"already sorted by {self._sort[0].where}, cannot add {found.where}"
            )
        return found

    def pager(self, pager: Pager | None) -> RedisSearchQuery[QE]:
        if pager is not None and not isinstance(pager, Pager):
            raise TypeError(f"RedisSearchQuery.pager takes a Pager, got {type(pager).__name__}")
        self._pager = pager
        return self

    @property
    def page(self) -> Pager | None:
        return self._pager

    def matches_nothing(self) -> bool:
        return any(c.text is None for c in self._conditions)

    def query_string(self) -> str:
        """The RediSearch query (``*`` without conditions)."""
        parts = [f"({c.text})" for c in self._conditions if c.text is not None]
        parts += [f"({r})" for r in self._raw]
        return " ".join(parts) if parts else "*"

    def sort_args(self) -> list[str]:
        """``SORTBY`` arguments; without a sort, by id (the order of MySQL's primary key,
        the same on every call) rather than RediSearch's relevance score."""
        if self._sort is None:
            return list(ID_SORT)
        field, ascending = self._sort
        return ["SORTBY", field.attribute, "ASC" if ascending else "DESC"]

    def entities(self) -> set[str]:
        found = {c.entity for c in self._conditions if c.entity}
        if self._sort is not None and self._sort[0].entity:
            found.add(self._sort[0].entity)
        return found


ID_FIELD = "_id"  # every document's id, indexed NUMERIC SORTABLE (runtime/search_index.py)
ID_SORT = ("SORTBY", ID_FIELD, "ASC")


def _sortable(field: Any) -> SearchField[Any, Any]:
    if not isinstance(field, SearchField):
        raise TypeError(
            "RedisSearchQuery sort_by_* takes a field from Provider.fields_redis_search, "
            f"got {type(field).__name__}"
        )
    if not field.sortable:
        raise TypeError(f"{field.where} is not sortable (declare it with sortable=True)")
    return field


# -- replies (RESP2 lists and RESP3 maps) -------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def get(mapping: dict[Any, Any], name: str, default: Any = None) -> Any:
    """``mapping[name]`` whether the reply's keys are bytes or str."""
    found = mapping.get(name.encode(), mapping.get(name))
    return default if found is None else found


def parse_search(reply: Any, prefix: str) -> tuple[int, list[int]]:
    """``(total, ids)`` of an ``FT.SEARCH ... NOCONTENT`` reply, RESP2 or RESP3."""
    cut = len(prefix)  # the prefix is ASCII: as many bytes as characters
    if type(reply) is dict:
        results = reply.get(b"results")
        if results is not None:  # RESP3 with bytes keys (redis-py's default): the fast path
            try:
                return int(reply[b"total_results"]), [int(r[b"id"][cut:]) for r in results]
            except (KeyError, TypeError, ValueError):
                pass  # an unexpected shape: the general path below
    elif type(reply) is list and reply and all(type(k) is bytes for k in reply[1:]):
        return int(reply[0]), [int(k[cut:]) for k in reply[1:]]
    if isinstance(reply, dict):
        total = get(reply, "total_results", 0)
        results = get(reply, "results", [])
        keys = [get(r, "id") if isinstance(r, dict) else r for r in results]
    else:
        total, keys = reply[0], list(reply[1:])
    return int(total), [int(_text(k)[len(prefix) :]) for k in keys]


def parse_info(reply: Any) -> dict[str, Any]:
    """``FT.INFO`` as a dict with str keys (RESP2 flat list or RESP3 map)."""
    if isinstance(reply, dict):
        items = list(reply.items())
    else:
        items = list(zip(reply[::2], reply[1::2], strict=False))
    return {_text(k): v for k, v in items}
