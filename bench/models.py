"""The Django models of the Django-ORM baseline: the same tables and columns as the entities."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Self

from django.db import models

if TYPE_CHECKING:
    from bench.environment import Record


class BenchItemBase(models.Model):
    """The columns every bench entity has (fluxa owns the schema: ``managed = False``)."""

    id = models.PositiveBigIntegerField(primary_key=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()
    active = models.BooleanField()
    created_at = models.DateTimeField()
    category = models.PositiveSmallIntegerField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} {self.id}"

    @classmethod
    def of(cls, r: Record, id_: int | None = None) -> Self:
        """An unsaved instance holding the record (its id, or ``id_``)."""
        return cls(
            id=r.id if id_ is None else id_,
            name=r.name,
            price=r.price_decimal,
            quantity=r.quantity,
            active=r.active,
            created_at=r.created_at,
            category=r.category,
        )


class BenchItem(BenchItemBase):
    """``BenchItemEntity``'s table seen by the Django ORM."""

    objects: ClassVar[models.Manager[BenchItem]] = models.Manager()

    class Meta:
        app_label = "bench"
        db_table = "BenchItemEntity"
        managed = False


class BenchCachedItem(BenchItemBase):
    """``BenchCachedItemEntity``'s table (Django reads it from MySQL, of course)."""

    objects: ClassVar[models.Manager[BenchCachedItem]] = models.Manager()

    class Meta:
        app_label = "bench"
        db_table = "BenchCachedItemEntity"
        managed = False


class BenchLocalItem(BenchItemBase):
    """``BenchLocalItemEntity``'s table."""

    objects: ClassVar[models.Manager[BenchLocalItem]] = models.Manager()

    class Meta:
        app_label = "bench"
        db_table = "BenchLocalItemEntity"
        managed = False


class BenchSearchItem(BenchItemBase):
    """``BenchSearchItemEntity``'s table (Django filters and sorts it in MySQL)."""

    objects: ClassVar[models.Manager[BenchSearchItem]] = models.Manager()

    class Meta:
        app_label = "bench"
        db_table = "BenchSearchItemEntity"
        managed = False


class BenchPlain(models.Model):
    """``BenchPlainEntity``'s table seen by the Django ORM."""

    id = models.PositiveBigIntegerField(primary_key=True)
    name = models.CharField(max_length=100)
    email = models.CharField(max_length=100)
    category = models.PositiveSmallIntegerField()
    score = models.FloatField()
    seen_at = models.DateTimeField()
    active = models.BooleanField()

    objects: ClassVar[models.Manager[BenchPlain]] = models.Manager()

    class Meta:
        app_label = "bench"
        db_table = "BenchPlainEntity"
        managed = False

    def __str__(self) -> str:
        return f"BenchPlain {self.id}"
