"""Views for the middleware tests: they create categories through the request's Context."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from fluxa_django import current_context
from tests.generated import CategoryEntityProvider


def _create(name: str) -> int:
    category = CategoryEntityProvider.new(current_context())
    category.name = name
    return category.id


def create(request: HttpRequest) -> JsonResponse:
    category = CategoryEntityProvider.new(request.fluxa)  # type: ignore[attr-defined]
    category.name = request.GET["name"]
    return JsonResponse({"id": category.id})


def crash(request: HttpRequest) -> HttpResponse:
    _create(request.GET["name"])
    raise RuntimeError("the view failed")


def unavailable(request: HttpRequest) -> HttpResponse:
    _create(request.GET["name"])
    return HttpResponse(status=503)


def not_found(request: HttpRequest) -> HttpResponse:
    _create(request.GET["name"])
    return HttpResponse(status=404)


async def create_async(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"id": _create(request.GET["name"])})


async def crash_async(request: HttpRequest) -> HttpResponse:
    _create(request.GET["name"])
    raise RuntimeError("the async view failed")


def read(request: HttpRequest) -> JsonResponse:
    ids = [int(i) for i in request.GET["ids"].split(",")]
    found = CategoryEntityProvider.get_by_ids(request.fluxa, ids)  # type: ignore[attr-defined]
    return JsonResponse({"names": [category.name for category in found]})


urlpatterns = [
    path("create/", create),
    path("read/", read),
    path("crash/", crash),
    path("unavailable/", unavailable),
    path("not-found/", not_found),
    path("create-async/", create_async),
    path("crash-async/", crash_async),
]


def create_with_failing_hook(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"id": _create(request.GET["name"])})


urlpatterns.append(path("create-hooked/", create_with_failing_hook))
