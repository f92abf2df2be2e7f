"""``manage.py fluxa_generate``: write the typed providers (no server needed)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fluxa_django.codegen import generate
from fluxa_django.errors import ConfigError, FluxaError


class Command(BaseCommand):
    help = "Generate the typed entity and provider modules into FLUXA['GENERATED_PACKAGE']."
    # System checks import the URLconf, whose views may import the package this
    # command is about to write; entity checks run inside generate() anyway.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="exit 1 when the files on disk are stale"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from fluxa_django.conf import (
            fluxa_settings,
            generated_package_dir,
            registry_from_settings,
        )

        try:
            dotted = fluxa_settings().get("GENERATED_PACKAGE")
            if not isinstance(dotted, str) or not dotted:
                raise CommandError(
                    "settings.FLUXA['GENERATED_PACKAGE'] must name the package to write"
                )
            try:
                target = generated_package_dir(dotted)
            except ConfigError as exc:
                raise CommandError(str(exc)) from None
            changed = generate(registry_from_settings(), target, check=options["check"])
        except FluxaError as exc:
            raise CommandError(str(exc)) from None
        if options["check"]:
            if changed:
                raise CommandError(
                    f"generated code in {target} is stale: {', '.join(changed)}; run fluxa_generate"
                )
            self.stdout.write(self.style.SUCCESS(f"{target}: generated code is up to date."))
            return
        for name in changed:
            verb = "wrote" if (target / name).exists() else "removed"
            self.stdout.write(f"{verb} {target / name}")
        self.stdout.write(self.style.SUCCESS(f"{target}: {len(changed)} file(s) changed."))
