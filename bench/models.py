"""The Django model of the Django-ORM baseline: the same table and columns as the entity."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class BenchItem(models.Model):
    """``BenchItemEntity``'s table seen by the Django ORM (fluxa owns the schema)."""

    id = models.PositiveBigIntegerField(primary_key=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()
    active = models.BooleanField()
    created_at = models.DateTimeField()
    category = models.PositiveSmallIntegerField()

    objects: ClassVar[models.Manager[BenchItem]] = models.Manager()

    class Meta:
        app_label = "bench"
        db_table = "BenchItemEntity"
        managed = False

    def __str__(self) -> str:
        return f"BenchItem {self.id}"
