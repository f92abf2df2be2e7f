"""FluxaContextMiddleware: flush after a response < 500, discard on exceptions and 5xx."""

from __future__ import annotations

import gc
import logging

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client

from fluxa_django import Context, current_context


def names(ctx: Context) -> list[str]:
    return [r[0] for r in ctx.engine.mysql().query("SELECT name FROM CategoryEntity ORDER BY id")]


def test_successful_response_flushes_once(fluxa_ctx: Context, client: Client) -> None:
    response = client.get("/create/", {"name": "Books"})
    assert response.status_code == 200
    assert names(fluxa_ctx) == ["Books"]


def test_4xx_still_flushes(fluxa_ctx: Context, client: Client) -> None:
    assert client.get("/not-found/", {"name": "Kept"}).status_code == 404
    assert names(fluxa_ctx) == ["Kept"]


def test_exception_discards_pending_changes(fluxa_ctx: Context) -> None:
    client = Client(raise_request_exception=False)
    assert client.get("/crash/", {"name": "Lost"}).status_code == 500
    assert names(fluxa_ctx) == []


def test_5xx_discards_pending_changes(fluxa_ctx: Context, client: Client) -> None:
    assert client.get("/unavailable/", {"name": "Lost"}).status_code == 503
    assert names(fluxa_ctx) == []


def test_failed_flush_becomes_a_logged_500(
    fluxa_ctx: Context, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    client.get("/create/", {"name": "Unique"})
    with caplog.at_level(logging.ERROR, logger="fluxa_django"):
        response = client.get("/create/", {"name": "Unique"})  # duplicate unique index
    assert response.status_code == 500
    assert "changes were not saved" in caplog.text
    assert names(fluxa_ctx) == ["Unique"]


def test_async_views_flush_and_discard(fluxa_ctx: Context) -> None:
    client = AsyncClient(raise_request_exception=False)
    ok = async_to_sync(client.get)("/create-async/", {"name": "Async"})
    assert ok.status_code == 200
    failed = async_to_sync(client.get)("/crash-async/", {"name": "AsyncLost"})
    assert failed.status_code == 500
    assert names(fluxa_ctx) == ["Async"]


def _live(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is kind)


def test_the_entities_of_a_request_go_with_it(fluxa_ctx: Context, client: Client) -> None:
    """The request's context cache is emptied when the response is done: the entities
    the view read are freed by reference counting (the context and its cached entities
    point at each other; kept, they would wait for the garbage collector), while the
    context itself stays usable."""
    from tests.generated import CategoryEntity, CategoryEntityProvider

    ids = []
    for name in ("A", "B", "C"):
        category = CategoryEntityProvider.new(fluxa_ctx)
        category.name = name
        ids.append(category.id)
    fluxa_ctx.flush()
    fluxa_ctx._release()
    gc.collect()
    gc.disable()
    try:
        before = _live(CategoryEntity)
        response = client.get("/read/", {"ids": ",".join(map(str, ids))})
        assert response.json() == {"names": ["A", "B", "C"]}
        assert _live(CategoryEntity) == before
        ctx: Context = response.wsgi_request.fluxa  # type: ignore[attr-defined]
        assert [c.name for c in CategoryEntityProvider.get_by_ids(ctx, ids)] == ["A", "B", "C"]
    finally:
        gc.enable()


def test_current_context_outside_a_request_raises() -> None:
    with pytest.raises(LookupError, match="not inside a request"):
        current_context()


def test_failing_hook_is_logged_and_the_response_kept(
    fluxa_ctx: Context, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.generated import CategoryEntity, CategoryEntityProvider

    def broken(ctx: Context, entity: CategoryEntity) -> None:
        raise RuntimeError("hook bug")

    CategoryEntityProvider.on_after_insert(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="fluxa_django"):
            response = client.get("/create-hooked/", {"name": "Hooked"})
    finally:
        CategoryEntityProvider._after_insert = None
    assert response.status_code == 200
    assert "the changes were saved" in caplog.text
    assert names(fluxa_ctx) == ["Hooked"]
