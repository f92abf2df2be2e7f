"""The order view of the example shop: the order goes to MySQL (flushed in the view), then
one analytics row per product goes to ClickHouse (``shop.analytics``)."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Literal

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from fluxa_django.errors import FluxaError
from fluxa_django.middleware import FluxaHttpRequest
from shop.analytics import record_order
from shop.fluxa import CustomerEntityProvider, OrderEntityProvider, ProductEntityProvider

log = logging.getLogger(__name__)

_CHANNELS: dict[str, Literal["web", "app", "shop"]] = {"web": "web", "app": "app", "shop": "shop"}


@csrf_exempt
@require_http_methods(["POST"])
def orders(request: FluxaHttpRequest) -> JsonResponse:
    ctx = request.fluxa
    data: dict[str, Any] = json.loads(request.body or b"{}")
    try:
        email = str(data["email"])
        quantity = int(data.get("quantity", 1))
        ids = [int(i) for i in data["product_ids"]]
        channel = _CHANNELS[data.get("channel", "web")]
    except (KeyError, TypeError, ValueError) as exc:
        return JsonResponse({"error": f"bad order: {exc}"}, status=400)
    found = ProductEntityProvider.get_by_ids(ctx, ids)
    products = [p for p in found if not p.fake_delete]
    if not ids or quantity < 1 or len(products) != len(set(ids)):
        return JsonResponse({"error": "bad order: unknown product or quantity"}, status=400)
    customer = CustomerEntityProvider.get_by_unique_index_email(ctx, email)
    if customer is None:
        customer = CustomerEntityProvider.new(ctx)
        customer.email = email
        customer.created_at = datetime.datetime.now()
    order = OrderEntityProvider.new(ctx)
    order.customer_id = customer.id
    order.products_ids = [p.id for p in products]
    order.quantity = quantity
    order.channel = channel
    order.created_at = datetime.datetime.now().replace(microsecond=0)
    ctx.flush()  # the order is in MySQL before its analytics rows are written
    lines = [(p.id, p.name, quantity, p.price) for p in products]
    try:
        record_order(order.id, lines, order.channel, order.created_at, ctx=ctx)
    except FluxaError:  # analytics are best effort: the order stands
        log.exception("order %s: the ClickHouse analytics rows were not written", order.id)
    total = round(sum(price * quantity for _, _, _, price in lines), 2)
    return JsonResponse(
        {"id": order.id, "customer": email, "products": [p.name for p in products], "total": total},
        status=201,
    )
