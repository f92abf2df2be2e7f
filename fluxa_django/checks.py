"""Django system checks (``manage.py check``) for the FLUXA setting and entities.

Ids: ``fluxa.E001`` bad setting, ``fluxa.E002`` entity module not importable,
``fluxa.E010``-``E030`` entity definition errors (see docs/checks.md). No
network I/O happens in these. ``manage.py check --deploy`` adds
``fluxa.W100``: a pool whose server does not answer (one round trip per pool).
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Warning, register

from fluxa_django.errors import ConfigError, FluxaError


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
    if not registry.entities:  # nothing to migrate or generate: say so, not "no changes"
        return [
            Error(
                "settings.FLUXA['ENTITIES'] lists no module defining an entity",
                hint="List the modules that define your entities, e.g. ['shop.entities'].",
                id="fluxa.E005",
            )
        ]
    return [
        Error(str(err), obj=err.entity or None, id=f"fluxa.{err.code}") for err in registry.check()
    ]


@register("fluxa", deploy=True)
def check_fluxa_pools(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``check --deploy``: every pool of the engine answers now."""
    from fluxa_django.conf import get_engine

    try:
        engine = get_engine()
    except FluxaError as exc:
        return [Error(f"the fluxa engine cannot be built: {exc}", id="fluxa.E003")]
    return [
        Warning(
            f"{label.replace(':', ' pool ', 1)!s} does not answer: {why}",
            hint="Pools fail alone: the site runs, and each use of this pool raises "
            "PoolError until its server answers again (docs/reliability.md).",
            id="fluxa.W100",
        )
        for label, why in sorted(engine.probe().items())
    ]


@register("fluxa_codegen")
def check_generated_code(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The generated package matches the definitions (rendered in memory, no I/O but files).

    Tagged ``fluxa_codegen``: ``manage.py check`` runs it; ``fluxa_migrate`` does not,
    so a schema can be migrated before the code is generated again.
    """
    from fluxa_django.codegen import generate
    from fluxa_django.conf import fluxa_settings, generated_package_dir, registry_from_settings

    try:
        conf = fluxa_settings()
        dotted = conf.get("GENERATED_PACKAGE")
        if not isinstance(dotted, str) or not dotted:
            return []
        registry = registry_from_settings()
        if registry.check():
            return []  # reported by check_fluxa; nothing can be generated yet
        stale = generate(registry, generated_package_dir(dotted), check=True)
    except (FluxaError, ImportError):
        return []  # reported by check_fluxa
    if not stale:
        return []
    return [
        Error(
            f"the generated code in {dotted} does not match the entity definitions "
            f"({', '.join(stale)})",
            hint="Run `manage.py fluxa_generate`.",
            id="fluxa.E004",
        )
    ]
