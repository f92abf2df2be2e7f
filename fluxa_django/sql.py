"""``?`` placeholders -> the driver's ``%s`` form, with ``IN ?`` list expansion.

Values are never written into the SQL text: every value stays a bound parameter
and only the placeholder count changes when a list is expanded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_LIST_TYPES = (list, tuple, set, frozenset)
_IN_BEFORE = re.compile(r"\bIN\s*$", re.IGNORECASE)  # `x IN ?`: the parameter must be a list
# MySQL starts a `--` comment only when whitespace (or the end) follows the dashes.
_SPACE = frozenset(("", " ", "\t", "\r", "\n", "\f", "\v"))


@lru_cache(maxsize=4096)
def _split(sql: str) -> tuple[str, ...]:
    """Split ``sql`` at every ``?`` outside quotes, backticks and comments.

    Literal ``%`` characters are doubled for the driver's ``%`` formatting.
    """
    parts: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = i + 1
            while end < n:
                if sql[end] == "\\" and ch != "`":
                    end += 2
                    continue
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote
                        end += 2
                        continue
                    break
                end += 1
            buf.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
            continue
        if ch == "#" or (ch == "-" and sql.startswith("--", i) and sql[i + 2 : i + 3] in _SPACE):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            buf.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        if ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            buf.append(sql[i:end].replace("%", "%%"))
            i = end
            continue
        if ch == "?":
            parts.append("".join(buf))
            buf = []
        elif ch == "%":
            buf.append("%%")
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return tuple(parts)


def placeholder_count(sql: str) -> int:
    return len(_split(sql)) - 1


def bind(sql: str, params: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """Rewrite ``sql`` for mysqlclient; returns ``(sql, args)``.

    A list/tuple/set parameter expands to ``(%s,%s,...)``; an empty one to an
    empty subquery, so ``x IN ?`` is false and ``x NOT IN ?`` is true. Literal ``%`` signs are always
    doubled and ``args`` is always a tuple, so the driver always formats.
    """
    parts = _split(sql)
    count = len(parts) - 1
    if count != len(params):
        raise ValueError(
            f"SQL has {count} placeholder(s) but {len(params)} parameter(s) were given"
        )
    if count == 0:
        return parts[0], ()  # `%` already doubled: the driver always formats
    out = [parts[0]]
    args: list[Any] = []
    for number, (value, tail) in enumerate(zip(params, parts[1:], strict=True), 1):
        after_in = _IN_BEFORE.search(out[-1]) is not None
        if after_in != isinstance(value, _LIST_TYPES):
            kind = type(value).__name__
            raise ValueError(
                f"parameter {number}: `IN ?` takes a list, got {kind}"
                if after_in
                else f"parameter {number}: a {kind} is allowed only after `IN ?`"
            )
        if isinstance(value, _LIST_TYPES):
            items = list(value)
            if items:
                out.append("(" + ",".join(["%s"] * len(items)) + ")")
                args.extend(items)
            else:
                # An empty subquery: `x IN ()` is false and `x NOT IN ()` is true.
                out.append("(SELECT NULL FROM DUAL WHERE FALSE)")
        else:
            out.append("%s")
            args.append(value)
        out.append(tail)
    return "".join(out), tuple(args)
