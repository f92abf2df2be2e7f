"""Entity definitions and the schema derived from them."""

from fluxa_django.schema.builder import PoolCatalog, SchemaBuilder, build_schemas
from fluxa_django.schema.definition import Entity, FieldOptions, Reference, References, field
from fluxa_django.schema.model import (
    ColumnSchema,
    ColumnType,
    EntitySchema,
    FieldKind,
    IndexSchema,
    TableOptions,
)

__all__ = [
    "ColumnSchema",
    "ColumnType",
    "Entity",
    "EntitySchema",
    "FieldKind",
    "FieldOptions",
    "IndexSchema",
    "PoolCatalog",
    "Reference",
    "References",
    "SchemaBuilder",
    "TableOptions",
    "build_schemas",
    "field",
]
