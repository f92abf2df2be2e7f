"""JSON views of the example shop. Every write goes through ``request.fluxa``;
FluxaContextMiddleware flushes it once after the view returns, except for
``place_order_async``, which publishes its order to Kafka with ``flush_async`` for
``manage.py fluxa_consume_async`` to write (the synchronous orders are in ``orders.py``)."""

from __future__ import annotations

import datetime
import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from fluxa_django import Pager, PoolError, RedisSearchQuery
from fluxa_django.middleware import FluxaHttpRequest
from shop.fluxa import (
    CategoryEntityProvider,
    CustomerEntityProvider,
    OrderEntityProvider,
    ProductEntity,
    ProductEntityProvider,
    Status,
    Tag,
)


def _body(request: HttpRequest) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(request.body or b"{}")
    return data


def _product(p: ProductEntity) -> dict[str, Any]:
    category = p.category
    return {
        "id": p.id,
        "name": p.name,
        "price": p.price,
        "status": p.status.value,
        "tags": sorted(t.value for t in p.tags or ()),
        "category": category.name if category else None,
        "deleted": p.fake_delete,
    }


@csrf_exempt
@require_http_methods(["POST"])
def create_category(request: FluxaHttpRequest) -> JsonResponse:
    category = CategoryEntityProvider.new(request.fluxa)
    category.name = _body(request)["name"]
    return JsonResponse({"id": category.id, "name": category.name}, status=201)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def products(request: FluxaHttpRequest) -> JsonResponse:
    ctx = request.fluxa
    if request.method == "POST":
        data = _body(request)
        try:
            product = ProductEntityProvider.new(ctx)
            product.name = data["name"]
            product.price = data["price"]
            product.category_id = data["category_id"]
            product.status = Status(data.get("status", "draft"))
            product.tags = {Tag(t) for t in data.get("tags", [])}
        except (KeyError, TypeError, ValueError) as exc:
            ctx.clear_flush()
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse(_product(product), status=201)
    # The listing is a Redis Search query: full-text ``q`` (word prefixes), price range,
    # status and tag; total and page come from one FT.SEARCH, the rows through the caches.
    fields = ProductEntityProvider.fields_redis_search
    try:
        query = (
            RedisSearchQuery[ProductEntity]()
            .sort_by_asc(fields.price)
            .pager(Pager(int(request.GET.get("page", 1)), 20))
        )
        if "status" in request.GET:
            query.filter(fields.status.eq(Status(request.GET["status"])))
        if "tag" in request.GET:
            query.filter(fields.tags.eq(Tag(request.GET["tag"])))
        if "q" in request.GET:
            query.filter(fields.name.match(request.GET["q"], prefix=True))
        if "min_price" in request.GET:
            query.filter(fields.price.gte(float(request.GET["min_price"])))
        if "max_price" in request.GET:
            query.filter(fields.price.lte(float(request.GET["max_price"])))
    except (TypeError, ValueError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    found, total = ProductEntityProvider.search_many_in_redis_with_total(ctx, query)
    return JsonResponse({"total": total, "products": [_product(p) for p in found]})


@csrf_exempt
@require_http_methods(["GET", "PATCH", "DELETE"])
def product(request: FluxaHttpRequest, product_id: int) -> JsonResponse:
    ctx = request.fluxa
    found = ProductEntityProvider.get_by_id(ctx, product_id)
    if found is None or (found.fake_delete and request.method != "GET"):
        return JsonResponse({"error": f"product {product_id} not found"}, status=404)
    if request.method == "PATCH":
        data = _body(request)
        try:
            if "price" in data:
                found.price = data["price"]
            if "status" in data:
                found.status = Status(data["status"])
        except (TypeError, ValueError) as exc:
            ctx.clear_flush()
            return JsonResponse({"error": str(exc)}, status=400)
    elif request.method == "DELETE":
        found.delete()
    return JsonResponse(_product(found))


@csrf_exempt
@require_http_methods(["POST"])
def place_order_async(request: FluxaHttpRequest) -> JsonResponse:
    """An order accepted at once (202) and written by ``manage.py fluxa_consume_async``:
    ``flush_async`` publishes it to Kafka, so the middleware's flush finds nothing left to
    write. Its id is known now (``new()`` allocates it); the row exists once the consumer
    applied it. The customer must exist already: a customer created in the same async
    flush would not be found by its email until then, and a second order would create it
    twice."""
    ctx = request.fluxa
    data = _body(request)
    try:
        customer = CustomerEntityProvider.get_by_unique_index_email(ctx, str(data["email"]))
        if customer is None:
            return JsonResponse({"error": f"no customer {data['email']}"}, status=404)
        order = OrderEntityProvider.new(ctx)
        order.customer_id = customer.id
        order.products_ids = [int(i) for i in data.get("product_ids", [])]
        order.quantity = int(data.get("quantity", 1))
        order.channel = "app"
        order.created_at = datetime.datetime.now().replace(microsecond=0)
    except (KeyError, TypeError, ValueError) as exc:
        ctx.clear_flush()
        return JsonResponse({"error": str(exc)}, status=400)
    try:
        ctx.flush_async(update_cache=False)
    except PoolError as exc:  # not published: it will never be written
        ctx.clear_flush()
        return JsonResponse({"error": f"order not accepted: {exc}"}, status=503)
    return JsonResponse({"id": order.id, "customer": customer.id, "status": "accepted"}, status=202)


@require_http_methods(["GET"])
def order(request: FluxaHttpRequest, order_id: int) -> JsonResponse:
    found = OrderEntityProvider.get_by_id(request.fluxa, order_id)
    if found is None:
        return JsonResponse({"error": f"order {order_id} not found (yet)"}, status=404)
    return JsonResponse({"id": found.id, "customer": found.customer_id, "quantity": found.quantity})
