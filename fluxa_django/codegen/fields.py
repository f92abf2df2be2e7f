"""Per-column code: the property, the setter, the default and the ``fields`` reference.

Each function returns plain source lines for one column of one entity; the
generator assembles them. Conversions are written out, never looked up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fluxa_django.schema import ColumnSchema, EntitySchema, FieldKind

_BLOB_MAX = {"blob": 65535, "mediumblob": 16777215, "longblob": 4294967295}
_TEXT_MAX = 16777215  # mediumtext, in characters (upper bound)


@dataclass
class ColumnCode:
    """Source fragments for one column."""

    members: list[str] = field(default_factory=list)  # lines inside the entity class
    default: str = "None"  # Python expression of the column's zero value (database form)
    field_ref: str | None = None  # expression of the typed column reference, if filterable
    attribute: str = ""  # the attribute holding the column's plain value
    imports: set[str] = field(default_factory=set)  # "module:Name" pairs


def enum_name(column: ColumnSchema) -> str | None:
    return column.enum_class.__name__ if column.enum_class is not None else None


def literal_type(column: ColumnSchema) -> str:
    values = ", ".join(repr(v) for v in column.enum_values)
    return f"Literal[{values}]"


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


def column_code(
    schema: EntitySchema, column: ColumnSchema, targets: dict[str, EntitySchema]
) -> ColumnCode:
    i = column.position
    name = column.name
    where = f"{schema.name}.{name}"
    nullable = column.nullable
    opt = " | None" if nullable else ""
    vt = value_type(column)
    code = ColumnCode(attribute=name)
    kind = column.kind
    m = code.members

    def getter(body: list[str], type_: str = f"{vt}{opt}", attr: str = name) -> None:
        m.extend(
            [
                "    @property",
                f"    def {attr}(self) -> {type_}:",
                *[f"        {line}" for line in body],
                "",
            ]
        )

    def setter(body: list[str], type_: str = f"{vt}{opt}", attr: str = name) -> None:
        lines = list(body)
        if nullable:
            lines = ["if value is None:", f"    self._set({i}, None)", "    return", *lines]
        m.extend(
            [
                f"    @{attr}.setter",
                f"    def {attr}(self, value: {type_}) -> None:",
                *[f"        {line}" for line in lines],
                "",
            ]
        )

    def plain_getter() -> None:
        getter([f"value: {vt}{opt} = self._row[{i}]", "return value"])

    if kind is FieldKind.INT:
        width = column.int_width
        assert width is not None
        plain_getter()
        setter(
            [
                f"if type(value) is not int or not {width.min} <= value <= {width.max}:",
                f"    value = _v.check_int(value, {width.min}, {width.max}, {where!r})",
                f"self._set({i}, value)",
            ]
        )
        code.default = "None" if nullable else "0"
        code.field_ref = f"{'NullableColumn' if nullable else 'Column'}[int]({name!r})"
    elif kind is FieldKind.BOOL:
        if nullable:
            getter([f"value = self._row[{i}]", "return None if value is None else bool(value)"])
        else:
            getter([f"return bool(self._row[{i}])"], "bool")
        setter([f"self._set({i}, _v.check_bool(value, {where!r}))"])
        code.default = "None" if nullable else "0"
        code.field_ref = f"{'NullableColumn' if nullable else 'Column'}[bool]({name!r})"
    elif kind is FieldKind.FLOAT:
        if column.decimal is not None:
            p, s = column.decimal
            if nullable:
                getter(
                    [f"value = self._row[{i}]", "return None if value is None else float(value)"]
                )
            else:
                getter([f"return float(self._row[{i}])"], "float")
            setter(
                [f"self._set({i}, _v.to_decimal(value, {p}, {s}, {column.unsigned}, {where!r}))"]
            )
            code.default = "None" if nullable else f"Decimal({'0.' + '0' * s if s else '0'!r})"
            code.imports.add("decimal:Decimal")
        else:
            plain_getter()
            setter(
                [
                    f"self._set({i}, _v.check_float(value, {column.precision}, {column.unsigned}, {where!r}))"
                ]
            )
            code.default = "None" if nullable else "0.0"
        code.field_ref = f"{'NullableColumn' if nullable else 'Column'}[float]({name!r})"
    elif kind is FieldKind.STR:
        max_len = column.length if column.length is not None else _TEXT_MAX
        plain_getter()
        setter(
            [
                f"if type(value) is not str or len(value) > {max_len}:",
                f"    value = _v.check_str(value, {max_len}, {where!r})",
                f"self._set({i}, value)",
            ]
        )
        code.default = "None" if nullable else "''"
        code.field_ref = f"{'NullableStrColumn' if nullable else 'StrColumn'}({name!r})"
    elif kind is FieldKind.BYTES:
        plain_getter()
        setter(
            [
                f"self._set({i}, _v.check_bytes(value, {_BLOB_MAX[column.definition.sql_type]}, {where!r}))"
            ]
        )
        code.default = "None" if nullable else "b''"
    elif kind is FieldKind.DATE:
        plain_getter()
        setter([f"self._set({i}, _v.check_date(value, {where!r}))"])
        code.default = "None" if nullable else "datetime.date(1, 1, 1)"
        code.field_ref = f"{'NullableColumn' if nullable else 'Column'}[datetime.date]({name!r})"
    elif kind is FieldKind.DATETIME:
        plain_getter()
        setter([f"self._set({i}, _v.check_datetime(value, {where!r}))"])
        code.default = "None" if nullable else "datetime.datetime(1000, 1, 1)"
        code.field_ref = (
            f"{'NullableColumn' if nullable else 'Column'}[datetime.datetime]({name!r})"
        )
    elif kind is FieldKind.ENUM:
        allowed = f"_{name.upper()}_VALUES"
        m.insert(0, f"    # {name}: {', '.join(column.enum_values)}")
        members = enum_name(column)
        if members is not None:
            lookup = f"_{name.upper()}_MEMBERS"
            if nullable:
                getter(
                    [
                        f"value = self._row[{i}]",
                        f"return None if value is None else {lookup}[value]",
                    ]
                )
            else:
                getter([f"return {lookup}[self._row[{i}]]"], vt)
        else:
            plain_getter()
        setter([f"self._set({i}, _v.to_enum_value(value, {allowed}, {where!r}))"])
        code.default = "None" if nullable else repr(column.enum_values[0])
        code.field_ref = f"{'NullableColumn' if nullable else 'Column'}[{vt}]({name!r})"
    elif kind is FieldKind.SET:
        members = enum_name(column)
        order = f"_{name.upper()}_ORDER"
        convert = (
            f"_v.from_set_value(value, _{name.upper()}_MEMBERS)"
            if members
            else "_v.from_set_text(value)"
        )
        if nullable:
            getter([f"value = self._row[{i}]", f"return None if value is None else {convert}"])
        else:
            getter([f"value = self._row[{i}]", f"return {convert}"], vt)
        item = members or "str"
        setter(
            [f"self._set({i}, _v.to_set_value(value, {order}, {where!r}))"],
            f"Iterable[{item}]{opt}",
        )
        code.imports.add("collections.abc:Iterable")
        code.default = "None" if nullable else "''"
    elif kind is FieldKind.REFERENCE:
        target = targets[column.reference or ""]
        id_max = target.id_column.int_width.max if target.id_column.int_width else 0
        attr = f"{name}_id"
        code.attribute = attr
        getter([f"value: int | None = self._row[{i}]", "return value or None"], "int | None", attr)
        empty = "None" if nullable else "0"
        m.extend(
            [
                f"    @{attr}.setter",
                f"    def {attr}(self, value: int | None) -> None:",
                "        if value is None:",
                f"            self._set({i}, {empty})",
                "            return",
                f"        self._set({i}, _v.check_reference(value, {id_max}, {where!r}))",
                "",
                "    @property",
                f"    def {name}(self) -> {target.name} | None:",
                f'        """The referenced {target.name}, loaded through the caches."""',
                f"        value = self._row[{i}]",
                "        if not value:",
                "            return None",
                f"        from .{_module(target)} import {target.name}Provider",
                "",
                f"        return {target.name}Provider.get_by_id(self._ctx, value)",
                "",
                f"    @{name}.setter",
                f"    def {name}(self, value: {target.name} | None) -> None:",
                f"        self.{attr} = None if value is None else value.id",
                "",
            ]
        )
        code.default = "None" if nullable else "0"
        code.field_ref = f"{'NullableColumn' if nullable else 'Column'}[int]({name!r})"
        code.imports.add(f"TYPE:{target.name}")
    elif kind is FieldKind.REFERENCES:
        target = targets[column.reference or ""]
        id_max = target.id_column.int_width.max if target.id_column.int_width else 0
        attr = f"{name}_ids"
        code.attribute = attr
        if nullable:
            getter(
                [
                    f"value = self._row[{i}]",
                    "return None if value is None else _v.from_ids_json(value)",
                ],
                "list[int] | None",
                attr,
            )
        else:
            getter([f"return _v.from_ids_json(self._row[{i}])"], "list[int]", attr)
        empty = "'[]'" if nullable else "''"
        setter(
            [f"self._set({i}, _v.to_ids_json(value, {id_max}, {where!r}, {empty}))"],
            f"Iterable[int]{opt}",
            attr,
        )
        m.extend(
            [
                f"    def load_{name}(self) -> list[{target.name}]:",
                f'        """The referenced {target.name} entities, loaded through the caches."""',
                f"        from .{_module(target)} import {target.name}Provider",
                "",
                f"        return {target.name}Provider.get_by_ids(self._ctx, self.{attr} or [])",
                "",
            ]
        )
        code.imports.add("collections.abc:Iterable")
        code.imports.add(f"TYPE:{target.name}")
        code.default = "None" if nullable else "''"
    elif kind is FieldKind.FAKE_DELETE:
        getter([f"return bool(self._row[{i}])"], "bool")
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


def _module(schema: EntitySchema) -> str:
    from fluxa_django.codegen.naming import snake

    return snake(schema.name)
