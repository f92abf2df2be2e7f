"""Source layout of generated code: literals, bracket splitting and import blocks.

The generator writes code that ``ruff format`` and ``ruff check`` (isort rules)
accept unchanged, without running ruff: the few shapes it emits are laid out here
by the rules ruff (and black) apply to them, at a line length of 100.

- A string literal uses double quotes unless the text holds more double quotes
  than single quotes (:func:`py_str`).
- A statement that fits on one line stays on one line. Otherwise its trailing
  bracket is split: the arguments of a call (or the parameters of a ``def``) go on
  one indented line if they fit there, else one per line with a trailing comma; the
  items of a tuple, list, set or dict display with two or more items always go one
  per line with a trailing comma. A lone argument or item is split in turn and
  gets no comma, except in a one-element tuple and a one-parameter ``def``. A
  parameter ``name: T | None`` too long for its line breaks before the ``|``.
- The value of ``x = ...`` / ``return ...`` splits its own trailing bracket when the
  line up to that bracket fits; otherwise it is wrapped in parentheses (on one line
  inside them if it fits there). A value that parentheses would not help (a long
  SQL string) stays on one line.
- ``tests/test_codegen_output.py`` pins these rules: it runs ruff on generated
  code whose long names force each kind of split.
- Imports are grouped (``__future__``, standard library, the project's and
  fluxa_django's modules, then relative imports), sorted the way isort sorts them
  (constants, then classes, then other names) and merged per module.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LINE_LENGTH = 100
INDENT = "    "


def py_str(text: str) -> str:
    """``text`` as a Python string literal, quoted and escaped as ruff formats it."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    for char in text:
        out.append("\\" + char if char == quote else repr(char)[1:-1])
    return quote + "".join(out) + quote


def py_value(value: object) -> Expr:
    """A literal for ``None``, ``bool``, ``int``, ``str``, ``bytes`` and tuples of them."""
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, bytes):
        return "b" + py_str(value.decode("latin-1"))
    if isinstance(value, tuple):
        return tuple_(py_value(v) for v in value)
    if value is None or isinstance(value, bool | int):
        return repr(value)
    raise TypeError(f"no literal for {type(value).__name__}")


@dataclass(frozen=True)
class Brackets:
    """An expression ending in a bracket pair: a call, a ``def`` signature or a display."""

    head: str  # everything up to and including the opening bracket
    items: tuple[Expr, ...]
    close: str  # the closing bracket and what follows it (``) -> None:``)
    display: bool = False  # a tuple/list/set/dict display: one item per line when split
    signature: bool = False  # ``def`` parameters: a lone one keeps a comma, unions split

    def flat(self) -> str:
        inner = ", ".join(flat(item) for item in self.items)
        if self.one_tuple:
            inner += ","
        return f"{self.head}{inner}{self.close}"

    @property
    def one_tuple(self) -> bool:
        return self.display and self.head == "(" and len(self.items) == 1


Expr = str | Brackets


def call(function: str, *args: Expr) -> Brackets:
    return Brackets(f"{function}(", args, ")")


def subscript(value: str, index: Expr) -> Brackets:
    return Brackets(f"{value}[", (index,), "]")


def tuple_(items: Iterable[Expr]) -> Brackets:
    return Brackets("(", tuple(items), ")", display=True)


def dict_(pairs: Iterable[tuple[str, str]]) -> Brackets:
    return Brackets("{", tuple(f"{key}: {value}" for key, value in pairs), "}", display=True)


def flat(expr: Expr) -> str:
    return expr if isinstance(expr, str) else expr.flat()


def _fits(indent: int, text: str) -> bool:
    return indent * len(INDENT) + len(text) <= LINE_LENGTH


def lay_out(expr: Expr, indent: int, prefix: str = "", suffix: str = "") -> list[str]:
    """Lines of ``prefix + expr + suffix`` at ``indent`` levels, split as ruff splits it."""
    pad = INDENT * indent
    one_line = prefix + flat(expr) + suffix
    if isinstance(expr, str) or not expr.items or _fits(indent, one_line):
        return [pad + one_line]
    lines = [pad + prefix + expr.head]
    inner = indent + 1
    lone = len(expr.items) == 1
    if lone and not (expr.one_tuple or expr.signature):
        lines += lay_out(expr.items[0], inner)  # a lone item gets no comma
    elif not (expr.display or lone) and _fits(inner, body := ", ".join(map(flat, expr.items))):
        lines.append(INDENT * inner + body)
    else:
        for item in expr.items:
            if expr.signature and isinstance(item, str) and not _fits(inner, item + ","):
                lines += _split_union(item, inner)
            else:
                lines += lay_out(item, inner, suffix=",")
    lines.append(pad + expr.close + suffix)
    return lines


def _split_union(parameter: str, indent: int) -> list[str]:
    """``name: A | None`` too long for its line: ruff breaks before the ``|``."""
    pad = INDENT * indent
    head, bar, tail = parameter.rpartition(" | ")
    if not bar:
        return [f"{pad}{parameter},"]
    return [pad + head, f"{pad}| {tail},"]


def statement(indent: int, text: str, expr: Expr | None = None) -> list[str]:
    """``text + expr`` as one statement (``return f(...)``, ``self._set(...)``)."""
    if expr is None:
        return [INDENT * indent + text]
    if not text:
        return lay_out(expr, indent)
    return _best_fit(indent, text, expr)


def assign(indent: int, target: str, value: Expr) -> list[str]:
    """``target = value``, split as ruff splits the right-hand side."""
    return _best_fit(indent, f"{target} = ", value)


def _best_fit(indent: int, prefix: str, expr: Expr) -> list[str]:
    """``prefix + expr`` where ``expr`` may be wrapped in parentheses (``return``, ``x =``).

    One line if it fits; else the expression's own trailing bracket is split when
    the line up to it fits; else the expression goes inside parentheses, on one
    line if it fits there, split otherwise. Where parentheses would not help (a
    long SQL string, a callee longer than the line) they are left out.
    """
    pad = INDENT * indent
    one_line = prefix + flat(expr)
    if _fits(indent, one_line):
        return [pad + one_line]
    splittable = isinstance(expr, Brackets) and bool(expr.items)
    if isinstance(expr, Brackets) and splittable and _fits(indent, prefix + expr.head):
        return lay_out(expr, indent, prefix)
    if _fits(indent + 1, flat(expr)):
        return [f"{pad}{prefix}(", INDENT * (indent + 1) + flat(expr), f"{pad})"]
    if isinstance(expr, Brackets) and splittable:
        if _fits(indent + 1, expr.head):
            return [f"{pad}{prefix}(", *lay_out(expr, indent + 1), f"{pad})"]
        return lay_out(expr, indent, prefix)  # parentheses would not help
    return [pad + one_line]


def def_(indent: int, name: str, params: Sequence[str], returns: str) -> list[str]:
    """A ``def`` line, its parameters split as ruff splits them when too long."""
    signature = Brackets(f"def {name}(", tuple(params), f") -> {returns}:", signature=True)
    return lay_out(signature, indent)


# -- imports ---------------------------------------------------------------------------

STDLIB = frozenset(sys.stdlib_module_names)


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """Case-insensitive natural order (``Entity2`` before ``Entity10``), as isort compares."""
    parts = re.split(r"(\d+)", text.lower())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def _member_key(name: str) -> tuple[int, tuple[tuple[int, int | str], ...], str]:
    """isort's ``order-by-type``: CONSTANTS, then Classes, then other names."""
    bare = name.split(" as ")[0]
    if bare.isupper() and len(bare) > 1:
        group = 0
    elif bare[:1].isupper():
        group = 1
    else:
        group = 2
    return group, _natural(bare), name


def sort_names(names: Iterable[str]) -> list[str]:
    """Names in isort order (also the order ruff's RUF022 wants for ``__all__``)."""
    return sorted(set(names), key=_member_key)


def import_block(imports: Iterable[tuple[str, str]], indent: int = 0) -> list[str]:
    """Import lines for ``(module, name)`` pairs, grouped and sorted.

    An empty ``name`` means ``import module``; ``name`` may be ``"x as y"``, which
    keeps its own line, as isort does by default. Sections: ``__future__``, standard library, absolute (fluxa_django
    and the project's modules, which ruff counts as first-party here), relative.
    """
    sections: dict[int, dict[str, set[str]]] = {}
    for module, name in imports:
        if module == "__future__":
            section = 0
        elif module.startswith("."):
            section = 3
        elif module.split(".")[0] in STDLIB:
            section = 1
        else:
            section = 2
        sections.setdefault(section, {}).setdefault(module, set()).add(name)
    pad = INDENT * indent
    lines: list[str] = []
    for section in sorted(sections):
        if lines:
            lines.append("")
        modules = sections[section]
        ordered = sorted(modules, key=lambda m: (_natural(m), m))
        lines += [f"{pad}import {m}" for m in ordered if "" in modules[m]]
        for module in ordered:
            names = sort_names(modules[module] - {""})
            aliased = [n for n in names if " as " in n]
            plain = [n for n in names if " as " not in n]
            groups = [plain] if plain else []
            groups += [[n] for n in aliased]  # an ``as`` import keeps its own statement
            for group in groups:
                head = f"from {module} import "
                text = head + ", ".join(group)
                if _fits(indent, text):
                    lines.append(pad + text)
                else:
                    lines += [f"{pad}{head}(", *(f"{pad}{INDENT}{n}," for n in group), f"{pad})"]
    return lines
