"""Entities used across the test suite: together they use every field type and tag."""

from __future__ import annotations

import datetime
import enum

from fluxa_django import (
    Entity,
    Reference,
    References,
    field,
    int8,
    int16,
    int32,
    int64,
    uint8,
    uint16,
    uint32,
    uint64,
)


class Status(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    ARCHIVED = "archived"


class Tag(enum.StrEnum):
    NEW = "new"
    SALE = "sale"


class CategoryEntity(Entity):
    id: uint16
    name: str = field(required=True)

    class Meta:
        unique_indexes = {"Name": ["name"]}


class ProductEntity(Entity):
    id: uint64
    name: str = field(required=True, length=100)
    price: float = field(decimal=(10, 2))
    category: Reference[CategoryEntity] = field(required=True)
    status: Status = field(required=True)
    tags: set[Tag] | None
    description: str = field(length="max")
    weight: float | None
    released: datetime.date | None
    created_at: datetime.datetime
    fake_delete: bool

    class Meta:
        table = "ProductEntity"
        redis_cache = True
        local_cache = True
        unique_indexes = {"Name": ["name"]}
        cached_unique_indexes = {"Name": ["name"]}
        indexes = {"CategoryStatus": ["category", "status"]}


class EveryTypeEntity(Entity):
    """One field of every supported type and tag."""

    id: uint32
    u8: uint8
    u16: uint16
    u32: uint32
    u32m: uint32 = field(mediumint=True)
    u64: uint64
    i8: int8
    i16: int16
    i32: int32
    i32m: int32 = field(mediumint=True)
    i64: int64
    plain_int: int
    n_u8: uint8 | None
    n_i64: int64 | None
    flag: bool
    n_flag: bool | None
    ratio: float
    n_ratio: float | None
    money: float = field(decimal=(12, 3), unsigned=True)
    rounded: float = field(precision=2)
    positive: float = field(unsigned=True)
    text: str
    n_text: str | None
    short: str = field(length=20, required=True)
    long_text: str = field(length="max")
    n_long_text: str | None = field(length="max")
    data: bytes
    n_data: bytes | None
    medium_data: bytes | None = field(mediumblob=True)
    long_data: bytes | None = field(longblob=True)
    day: datetime.date
    n_day: datetime.date | None
    moment: datetime.datetime
    n_moment: datetime.datetime | None
    status: Status
    n_status: Status | None
    color: str = field(enum=("red", "green"))
    tags: set[Tag]
    n_tags: set[Tag] | None
    sizes: str | None = field(set=("s", "m", "l"))
    category: Reference[CategoryEntity] = field(required=True)
    n_category: Reference[CategoryEntity] | None
    categories: References[CategoryEntity]
    n_categories: References[CategoryEntity] | None
    title: str = field(searchable=True, sortable=True)
    skipped: str = field(ignore=True)
    updated_at: datetime.datetime

    class Meta:
        table = "every_type"
        redis_search = "search"
        indexes = {"Day": ["day"], "StatusColor": ["status", "color"]}
        unique_indexes = {"Short": ["short"]}


class UserEntity(Entity):
    """The seed's UserEntity (01-introduction.txt)."""

    id: uint64
    name: str = field(required=True)
    email: str = field(required=True)
    age: uint8

    class Meta:
        redis_cache = True
        unique_indexes = {"Email": ["email"]}


class DeletableUserEntity(Entity):
    """The seed's fake-delete UserEntity (03-fake-delete.txt)."""

    id: uint64
    name: str
    email: str
    fake_delete: bool


class Genre(enum.StrEnum):
    NOVEL = "novel"
    POETRY = "poetry"
    ESSAY = "essay"


class BookEntity(Entity):
    """Every searchable field type (Redis Search on the pool "search", database 0)."""

    id: uint32 = field(searchable=True)
    title: str = field(required=True, length=200, searchable=True, sortable=True)
    isbn: str = field(length=40, searchable="tag")
    summary: str | None = field(length="max", searchable="both")
    pages: uint16 = field(searchable=True, sortable=True)
    balance: int32 = field(searchable=True)
    price: float = field(decimal=(10, 2), searchable=True, sortable=True)
    rating: float | None = field(searchable=True)
    in_stock: bool = field(searchable=True)
    published: datetime.date | None = field(searchable=True, sortable=True)
    updated_at: datetime.datetime = field(searchable=True, sortable=True)
    genre: Genre = field(searchable=True)
    tags: set[Tag] | None = field(searchable=True)
    category: Reference[CategoryEntity] | None = field(searchable=True)
    note: str = field(length=50)
    fake_delete: bool

    class Meta:
        redis_search = "search"
        redis_cache = True
