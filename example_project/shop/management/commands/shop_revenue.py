"""``manage.py shop_revenue``: the revenue per product, from the order analytics in ClickHouse."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from shop.analytics import revenue_per_product


class Command(BaseCommand):
    help = "Print the revenue per product of the orders in ClickHouse (order_events)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            type=datetime.date.fromisoformat,
            default=datetime.date(1970, 1, 1),
            help="first day counted (YYYY-MM-DD); all orders by default",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = revenue_per_product(options["since"])
        self.stdout.write(f"{'product':<20} {'units':>5} {'revenue':>10}")
        for name, units, revenue in rows:
            self.stdout.write(f"{name:<20} {units:>5} {revenue:>10}")
        total = sum((r for _, _, r in rows), Decimal("0.00"))
        self.stdout.write(f"{'total':<20} {sum(u for _, u, _ in rows):>5} {total:>10}")
