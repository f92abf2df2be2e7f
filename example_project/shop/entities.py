"""The shop's entities. Together they use every field type of SPEC §2."""

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
        redis_cache = True
        local_cache = True
        unique_indexes = {"Name": ["name"]}


class ProductEntity(Entity):
    id: uint64
    name: str = field(required=True, length=100, searchable=True, sortable=True)
    price: float = field(decimal=(10, 2), searchable=True, sortable=True)
    category: Reference[CategoryEntity] = field(required=True)
    status: Status = field(required=True, searchable=True)
    tags: set[Tag] | None = field(searchable=True)
    description: str = field(length="max")
    weight: float | None
    released: datetime.date | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    fake_delete: bool

    class Meta:
        table = "ProductEntity"
        redis_cache = True
        local_cache = True
        unique_indexes = {"Name": ["name"]}
        cached_unique_indexes = {"Name": ["name"]}
        indexes = {"CategoryStatus": ["category", "status"]}


class CustomerEntity(Entity):
    id: uint32
    email: str = field(required=True, length=190)
    name: str | None = field(length=100)
    age: uint8 | None
    score: int32
    balance: float = field(decimal=(12, 2), unsigned=True)
    rating: float = field(precision=2)
    vip: bool
    newsletter: bool | None
    avatar: bytes | None = field(mediumblob=True)
    birthday: datetime.date | None
    last_seen: datetime.datetime | None
    created_at: datetime.datetime

    class Meta:
        redis_cache = True
        unique_indexes = {"Email": ["email"]}
        cached_unique_indexes = {"Email": ["email"]}


class OrderEntity(Entity):
    id: uint64
    customer: Reference[CustomerEntity] = field(required=True)
    products: References[ProductEntity]
    coupon: Reference[ProductEntity] | None
    quantity: uint16
    small_delta: int8
    medium_delta: int16
    points: int64
    big_counter: uint64
    units: uint32 = field(mediumint=True)
    channel: str = field(enum=("web", "app", "shop"))
    flags: str | None = field(set=("gift", "express", "fragile"))
    receipt: bytes | None = field(longblob=True)
    note: str | None = field(length="max")
    created_at: datetime.datetime

    class Meta:
        redis_cache = True
        indexes = {"Customer": ["customer", "created_at"]}
