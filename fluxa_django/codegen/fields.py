"""Per-column code: the property, the setter, the default and the ``fields`` reference.

Each function returns source lines for one column of one entity, already laid out
as ``ruff format`` would (see ``layout``); the generator assembles them.
Conversions are written out, never looked up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fluxa_django.codegen.layout import (
    Expr,
    assign,
    call,
    def_,
    py_str,
    statement,
    subscript,
)
from fluxa_django.codegen.naming import module_alias, snake
from fluxa_django.schema import ColumnSchema, EntitySchema, FieldKind

_BLOB_MAX = {"blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
_TEXT_MAX = 16777215  # mediumtext, in characters (upper bound)


@dataclass
class ColumnCode:
    """Source fragments for one column."""

    members: list[str] = field(default_factory=list)  # lines inside the entity class
    default: str = "None"  # Python expression of the column's zero value (database form)
    field_ref: Expr | None = None  # expression of the typed column reference, if filterable
    attribute: str = ""  # the attribute holding the column's plain value
    imports: set[tuple[str, str]] = field(default_factory=set)  # (module, name) at run time
    type_imports: set[tuple[str, str]] = field(default_factory=set)  # under TYPE_CHECKING


def enum_name(column: ColumnSchema) -> str | None:
    return column.enum_class.__name__ if column.enum_class is not None else None


def literal_type(column: ColumnSchema) -> str:
    """The module-level alias of a ``field(enum=...)`` column's ``Literal[...]`` type."""
    words = column.name.split("_")
    return "_" + "".join(w[:1].upper() + w[1:] for w in words) + "Value"


def value_type(column: ColumnSchema) -> str:
    """The Python type of the column's value (without ``| None``)."""
    kind = column.kind
    if kind in (FieldKind.ID, FieldKind.INT, FieldKind.REFERENCE):
        return "int"
    if kind is FieldKind.BOOL or kind is FieldKind.FAKE_DELETE:
        return "bool"
    if kind is FieldKind.FLOAT:
        return "float"
    if kind is FieldKind.STR:
        return "str"
    if kind is FieldKind.BYTES:
        return "bytes"
    if kind is FieldKind.DATE:
        return "datetime.date"
    if kind is FieldKind.DATETIME:
        return "datetime.datetime"
    if kind is FieldKind.ENUM:
        return enum_name(column) or literal_type(column)
    if kind is FieldKind.SET:
        return f"set[{enum_name(column) or 'str'}]"
    return "list[int]"  # REFERENCES


def provider_ref(schema: EntitySchema, target: EntitySchema) -> str:
    """How ``schema``'s module names ``target``'s provider singleton.

    Another entity's module is imported once at module level as
    ``from . import category_entity as _category_entity`` (which also works while
    two modules import each other); a self-reference uses the module's own name.
    """
    if target.name == schema.name:
        return f"{target.name}Provider"
    return f"{module_alias(target.name)}.{target.name}Provider"


def column_code(
    schema: EntitySchema, column: ColumnSchema, targets: dict[str, EntitySchema]
) -> ColumnCode:
    i = column.position
    name = column.name
    where = py_str(f"{schema.name}.{name}")
    nullable = column.nullable
    opt = " | None" if nullable else ""
    vt = value_type(column)
    code = ColumnCode(attribute=name)
    kind = column.kind
    m = code.members
    column_class = "NullableColumn" if nullable else "Column"

    def getter(body: list[str], type_: str = f"{vt}{opt}", attr: str = name) -> None:
        m.extend(["    @property", *def_(1, attr, ["self"], type_), *body, ""])

    def setter(body: list[str], type_: str = f"{vt}{opt}", attr: str = name) -> None:
        lines = list(body)
        if nullable:
            lines = [
                "        if value is None:",
                f"            self._set({i}, None)",
                "            return",
                *lines,
            ]
        m.extend([f"    @{attr}.setter", *def_(1, attr, ["self", f"value: {type_}"], "None")])
        m.extend([*lines, ""])

    def set_to(expr: Expr) -> list[str]:
        return statement(2, "", call("self._set", str(i), expr))

    def plain_getter() -> None:
        row = subscript("self._row", str(i))
        getter([*assign(2, f"value: {vt}{opt}", row), "        return value"])

    def converting_getter(
        convert: Callable[[str], Expr], type_: str = vt, attr: str = name
    ) -> None:
        """A getter returning ``convert(<the stored value>)`` (``None`` stays ``None``)."""
        if nullable:
            body = [
                f"        value = self._row[{i}]",
                "        if value is None:",
                "            return None",
                *statement(2, "return ", convert("value")),
            ]
            getter(body, f"{type_} | None", attr)
        else:
            getter(statement(2, "return ", convert(f"self._row[{i}]")), type_, attr)

    def column_ref(type_: str) -> Expr:
        return call(f"{column_class}[{type_}, {schema.name}]", py_str(name))

    if kind is FieldKind.INT:
        width = column.int_width
        assert width is not None
        plain_getter()
        check = call("_v.check_int", "value", str(width.min), str(width.max), where)
        setter(
            [
                f"        if type(value) is not int or not {width.min} <= value <= {width.max}:",
                *assign(3, "value", check),
                f"        self._set({i}, value)",
            ]
        )
        code.default = "None" if nullable else "0"
        code.field_ref = column_ref("int")
    elif kind is FieldKind.BOOL:
        converting_getter(lambda v: call("bool", v))
        check = call("_v.check_bool", "value", where)
        setter(
            [
                "        if value is True or value is False:",
                f"            self._set({i}, 1 if value else 0)",
                "        else:",
                *statement(3, "", call("self._set", str(i), check)),
            ]
        )
        code.default = "None" if nullable else "0"
        code.field_ref = column_ref("bool")
    elif kind is FieldKind.FLOAT:
        if column.decimal is not None:
            p, s = column.decimal
            converting_getter(lambda v: call("float", v))
            unsigned = str(column.unsigned)
            setter(set_to(call("_v.to_decimal", "value", str(p), str(s), unsigned, where)))
            zero = "0." + "0" * s if s else "0"
            code.default = "None" if nullable else f"Decimal({py_str(zero)})"
            if not nullable:
                code.imports.add(("decimal", "Decimal"))
        else:
            plain_getter()
            precision, unsigned = str(column.precision), str(column.unsigned)
            check = call("_v.check_float", "value", precision, unsigned, where)
            if column.precision is None:
                # finite (and not negative when unsigned): stored as given
                low = "0.0 <=" if column.unsigned else "-math.inf <"
                code.imports.add(("math", ""))
                setter(
                    [
                        f"        if type(value) is not float or not {low} value < math.inf:",
                        *assign(3, "value", check),
                        f"        self._set({i}, value)",
                    ]
                )
            else:
                setter(set_to(check))
            code.default = "None" if nullable else "0.0"
        code.field_ref = column_ref("float")
    elif kind is FieldKind.STR:
        max_len = column.length if column.length is not None else _TEXT_MAX
        plain_getter()
        # varchar(n) counts characters; a text column counts bytes
        max_bytes = [] if column.length is not None else [str(_TEXT_MAX)]
        check = call("_v.check_str", "value", str(max_len), where, *max_bytes)
        setter(
            [
                f"        if type(value) is not str or len(value) > {max_len} or not value.isascii():",
                *assign(3, "value", check),
                f"        self._set({i}, value)",
            ]
        )
        code.default = "None" if nullable else '""'
        str_class = "NullableStrColumn" if nullable else "StrColumn"
        code.field_ref = call(f"{str_class}[{schema.name}]", py_str(name))
    elif kind is FieldKind.BYTES:
        plain_getter()
        blob_max = str(_BLOB_MAX[column.definition.sql_type])
        setter(set_to(call("_v.check_bytes", "value", blob_max, where)))
        code.default = "None" if nullable else 'b""'
    elif kind is FieldKind.DATE:
        plain_getter()
        setter(set_to(call("_v.check_date", "value", where)))
        code.default = "None" if nullable else "datetime.date(1, 1, 1)"
        code.field_ref = column_ref("datetime.date")
    elif kind is FieldKind.DATETIME:
        plain_getter()
        setter(set_to(call("_v.check_datetime", "value", where)))
        code.default = "None" if nullable else "datetime.datetime(1000, 1, 1)"
        code.field_ref = column_ref("datetime.datetime")
    elif kind is FieldKind.ENUM:
        allowed = f"_{name.upper()}_VALUES"
        m.append(f"    # {name}: {', '.join(column.enum_values)}")
        if enum_name(column) is not None:
            converting_getter(lambda v: subscript(f"_{name.upper()}_MEMBERS", v))
        else:
            plain_getter()
        setter(set_to(call("_v.to_enum_value", "value", allowed, where)))
        code.default = "None" if nullable else py_str(column.enum_values[0])
        code.field_ref = column_ref(vt)
    elif kind is FieldKind.SET:
        members = enum_name(column)
        if members:
            converting_getter(lambda v: call("_v.from_set_value", v, f"_{name.upper()}_MEMBERS"))
        else:
            converting_getter(lambda v: call("_v.from_set_text", v))
        order = f"_{name.upper()}_ORDER"
        setter(
            set_to(call("_v.to_set_value", "value", order, where)),
            f"Iterable[{members or 'str'}]{opt}",
        )
        code.imports.add(("collections.abc", "Iterable"))
        code.default = "None" if nullable else '""'
    elif kind is FieldKind.REFERENCE:
        target = targets[column.reference or ""]
        id_max = target.id_column.int_width.max if target.id_column.int_width else 0
        attr = f"{name}_id"
        code.attribute = attr
        getter(
            [f"        value: int | None = self._row[{i}]", "        return value or None"],
            "int | None",
            attr,
        )
        empty = "None" if nullable else "0"
        m.extend([f"    @{attr}.setter", *def_(1, attr, ["self", "value: int | None"], "None")])
        m.extend(
            [
                "        if value is None:",
                f"            self._set({i}, {empty})",
                "            return",
                *set_to(call("_v.check_reference", "value", str(id_max), where)),
                "",
            ]
        )
        load = call(f"{provider_ref(schema, target)}.get_by_id", "self._ctx", "value")
        getter(
            [
                f'        """The referenced {target.name}, loaded through the caches."""',
                f"        value = self._row[{i}]",
                "        if not value:",
                "            return None",
                *statement(2, "return ", load),
            ],
            f"{target.name} | None",
        )
        m.extend(
            [
                f"    @{name}.setter",
                *def_(1, name, ["self", f"value: {target.name} | None"], "None"),
            ]
        )
        entity_id = call("_v.entity_id", "value", py_str(target.name), where)
        m.extend([*assign(2, f"self.{attr}", entity_id), ""])
        code.default = "None" if nullable else "0"
        code.field_ref = column_ref("int")
        _import_target(code, schema, target)
    elif kind is FieldKind.REFERENCES:
        target = targets[column.reference or ""]
        id_max = target.id_column.int_width.max if target.id_column.int_width else 0
        attr = f"{name}_ids"
        code.attribute = attr
        converting_getter(lambda v: call("_v.from_ids_json", v), "list[int]", attr)
        empty = '"[]"' if nullable else '""'
        setter(
            set_to(call("_v.to_ids_json", "value", str(id_max), where, empty)),
            f"Iterable[int]{opt}",
            attr,
        )
        load = call(f"{provider_ref(schema, target)}.get_by_ids", "self._ctx", f"self.{attr} or []")
        m.extend(
            [
                *def_(1, f"load_{name}", ["self"], f"list[{target.name}]"),
                f'        """The referenced {target.name} entities, loaded through the caches."""',
                *statement(2, "return ", load),
                "",
            ]
        )
        code.imports.add(("collections.abc", "Iterable"))
        code.default = "None" if nullable else '""'
        _import_target(code, schema, target)
    elif kind is FieldKind.FAKE_DELETE:
        getter([f"        return bool(self._row[{i}])"], "bool")
        m.extend(
            [
                "    def force_delete(self) -> None:",
                '        """Delete the row for real on the next flush (not a soft delete)."""',
                "        self._force_delete()",
                "",
            ]
        )
        code.default = "0"
    return code


def _import_target(code: ColumnCode, schema: EntitySchema, target: EntitySchema) -> None:
    """Import the referenced entity's module (run time) and class (annotations only)."""
    if target.name == schema.name:
        return
    module = snake(target.name)
    code.imports.add((".", f"{module} as {module_alias(target.name)}"))
    code.type_imports.add((f".{module}", target.name))
