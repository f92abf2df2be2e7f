"""The Django app: registers the system checks; the engine is built lazily."""

from __future__ import annotations

from django.apps import AppConfig


class FluxaConfig(AppConfig):
    name = "fluxa_django"
    verbose_name = "FluxaORM"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from fluxa_django import checks  # noqa: F401 - registers the checks
