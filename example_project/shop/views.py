"""JSON views of the example shop. Every write goes through ``request.fluxa``;
FluxaContextMiddleware flushes it once after the view returns."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from fluxa_django import Pager, RedisSearchQuery
from fluxa_django.middleware import FluxaHttpRequest
from shop.fluxa import CategoryEntityProvider, ProductEntity, ProductEntityProvider, Status, Tag


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
