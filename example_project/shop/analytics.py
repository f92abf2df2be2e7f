"""Order analytics of the example shop in ClickHouse (chDB by default: no server needed).

``ORDER_EVENTS`` is created by ``fluxa_migrate`` (listed in ``FLUXA["CLICKHOUSE_TABLES"]``);
the order view adds one row per order line after the order is in MySQL, and
``manage.py shop_revenue`` prints the revenue per product.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from fluxa_django import get_engine
from fluxa_django.migrate.clickhouse import ClickhouseTable

POOL = "analytics"

ORDER_EVENTS = (
    ClickhouseTable("order_events", POOL)
    .column("day", "Date")
    .column("created_at", "DateTime")
    .column("order_id", "UInt64")
    .column("product_id", "UInt64")
    .column("product_name", "String")
    .column("channel", "String")
    .column("quantity", "UInt32")
    .column("amount", "Float64")
    .engine("MergeTree")
    .partition_by("toYYYYMM(day)")
    .order_by("(day, order_id)")
)

_COLUMNS = [c.name for c in ORDER_EVENTS.columns]


def record_order(
    order_id: int,
    lines: list[tuple[int, str, int, float]],
    channel: str,
    created_at: datetime.datetime,
    ctx: Any = None,
) -> int:
    """Insert one row per order line ``(product_id, product_name, quantity, unit price)``."""
    at = created_at.replace(microsecond=0)
    rows = [
        (at.date(), at, order_id, product_id, name, channel, quantity, float(price) * quantity)
        for product_id, name, quantity, price in lines
    ]
    return get_engine().clickhouse(POOL).insert(ORDER_EVENTS.name, rows, _COLUMNS, ctx=ctx)


def revenue_per_product(since: datetime.date, ctx: Any = None) -> list[tuple[str, int, Decimal]]:
    """``(product name, units, revenue)`` of the orders from ``since`` on, best first."""
    rows = (
        get_engine()
        .clickhouse(POOL)
        .query(
            "SELECT product_name, sum(quantity) AS units, sum(amount) AS revenue "
            "FROM order_events WHERE day >= {since:Date} "
            "GROUP BY product_name ORDER BY revenue DESC, product_name",
            {"since": since},
            ctx=ctx,
        )
    )
    return [
        (str(n), int(u), Decimal(str(round(r, 2))).quantize(Decimal("0.01"))) for n, u, r in rows
    ]
