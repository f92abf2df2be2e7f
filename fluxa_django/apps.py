"""The Django app: registers the system checks and installs the transaction adapter.

The engine is built lazily (``fluxa_django.get_engine()``).
"""

from __future__ import annotations

from django.apps import AppConfig


class FluxaConfig(AppConfig):
    name = "fluxa_django"
    verbose_name = "FluxaORM"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from fluxa_django import checks  # noqa: F401 - registers the checks
        from fluxa_django.runtime import outer
        from fluxa_django.transactions import DjangoTransactions

        if not isinstance(outer.active(), DjangoTransactions):
            outer.install(DjangoTransactions())
