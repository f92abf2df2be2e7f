"""Django system checks (``manage.py check``) for the FLUXA setting and entities.

Ids: ``fluxa.E001`` bad setting, ``fluxa.E002`` entity module not importable,
``fluxa.E010``-``E030`` entity definition errors (see docs/checks.md).
No network I/O happens here.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from fluxa_django.errors import ConfigError


@register("fluxa")
def check_fluxa(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from fluxa_django.conf import registry_from_settings

    try:
        registry = registry_from_settings()
    except ConfigError as exc:
        return [
            Error(str(exc), hint="See docs/settings.md for the FLUXA setting.", id="fluxa.E001")
        ]
    except ImportError as exc:
        return [Error(f"an entity module cannot be imported: {exc}", id="fluxa.E002")]
    return [
        Error(str(err), obj=err.entity or None, id=f"fluxa.{err.code}") for err in registry.check()
    ]
