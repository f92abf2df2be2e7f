"""``FluxaContextMiddleware``: a Context per request, flushed once after the view.

The response decides: status < 500 flushes the pending changes; a 5xx (which
is also what an exception in the view becomes) discards them. A failing flush
is logged and turned into a 500, so a client never sees success for a write
that did not happen. ``current_context()`` returns the request's Context.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseServerError

from fluxa_django.errors import HookError
from fluxa_django.runtime.context import Context, activate, current_context, deactivate

__all__ = ["FluxaContextMiddleware", "FluxaHttpRequest", "current_context"]

log = logging.getLogger("fluxa_django")


class FluxaHttpRequest(HttpRequest):
    """The type of a request that went through ``FluxaContextMiddleware``.

    Annotate views with it to get a typed ``request.fluxa`` (mypy --strict with
    django-stubs) without ``# type: ignore``::

        def product(request: FluxaHttpRequest, product_id: int) -> JsonResponse:
            found = ProductEntityProvider.get_by_id(request.fluxa, product_id)

    It is a static type only: at run time the request is Django's own object, to
    which the middleware adds ``fluxa``.
    """

    fluxa: Context


def _finish(ctx: Context, response: HttpResponseBase) -> HttpResponseBase:
    try:
        return _flush(ctx, response)
    finally:
        ctx._release()  # the request's entities go with the request (see Context._release)


def _flush(ctx: Context, response: HttpResponseBase) -> HttpResponseBase:
    if response.status_code >= 500:
        ctx.clear_flush()
        return response
    try:
        ctx.flush()
    except HookError:
        log.exception("an after-flush hook failed; the changes were saved")
        return response
    except Exception:
        log.exception("fluxa flush after the view failed; the changes were not saved")
        ctx.clear_flush()
        return HttpResponseServerError(b"internal error: changes could not be saved")
    return response


class FluxaContextMiddleware:
    """Gives ``request.fluxa`` (a fresh Context) and flushes it after the view."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        from fluxa_django.conf import get_engine

        ctx = get_engine().new_context()
        request.fluxa = ctx  # type: ignore[attr-defined]
        token = activate(ctx)
        try:
            response: HttpResponse = self.get_response(request)
        except BaseException:
            ctx.clear_flush()
            ctx._release()
            raise
        finally:
            deactivate(token)
        return _finish(ctx, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        from fluxa_django.conf import get_engine

        engine = await sync_to_async(get_engine)()
        ctx = engine.new_context()
        request.fluxa = ctx  # type: ignore[attr-defined]
        token = activate(ctx)
        try:
            get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
            response = await get_response(request)
        except BaseException:
            ctx.clear_flush()
            ctx._release()
            raise
        finally:
            deactivate(token)
        result: HttpResponseBase = await sync_to_async(_finish, thread_sensitive=True)(
            ctx, response
        )
        return result
