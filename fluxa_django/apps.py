"""The Django app: registers the system checks, installs the transaction adapter and
the error-report filter that hides pool credentials (``fluxa_django.debug``).

The engine is built lazily (``fluxa_django.get_engine()``).
"""

from __future__ import annotations

from django.apps import AppConfig


class FluxaConfig(AppConfig):
    name = "fluxa_django"
    verbose_name = "FluxaORM"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from fluxa_django import (
            checks,  # noqa: F401 - registers the checks
            debug,
        )
        from fluxa_django.runtime import outer
        from fluxa_django.transactions import DjangoTransactions

        if not isinstance(outer.active(), DjangoTransactions):
            outer.install(DjangoTransactions())
        debug.install()  # error reports never show the pools' credentials
