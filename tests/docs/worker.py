"""One Python session of the docs runner, like ``python manage.py shell`` in the project.

Started as ``python worker.py <fd> <config json>`` in the project's folder. It reads one
JSON request per line on stdin and answers each with one JSON line on file descriptor
``fd`` (its stdout and stderr are left to the code it runs). Every block of a page shares
one namespace, as lines typed into one shell do.

Config: ``settings`` (a Django settings module to set up, or null) and ``rules``
(``[old, new]`` replacements that turn an output into what the page shows).

Requests (``name`` is ``docs/page.md:line``):

- ``{"op": "exec", "source", "name"}``: run a python block; it must not print (shown
  output belongs in a pycon block, where it is compared);
- ``{"op": "doctest", "examples": [...], "name", "lineno"}``: run a pycon block with
  doctest (``ELLIPSIS | NORMALIZE_WHITESPACE``);
- ``{"op": "settings", "source", "name", "apply"}``: a settings fragment: exec it, build
  the registry of its ``FLUXA`` (no network I/O); with ``apply`` its names become the
  Django settings of the following blocks.

Answer: ``{"ok": bool, "detail": str}``.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import json
import os
import sys
import traceback
import types
from typing import Any

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


class Checker(doctest.OutputChecker):
    """Compares the output as the page shows it (temporary names replaced)."""

    def __init__(self, rules: list[tuple[str, str]]) -> None:
        self.rules = rules

    def normalize(self, got: str) -> str:
        for old, new in self.rules:
            got = got.replace(old, new)
        return got

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        return super().check_output(want, self.normalize(got), optionflags)

    def output_difference(self, example: doctest.Example, got: str, optionflags: int) -> str:
        return super().output_difference(example, self.normalize(got), optionflags)


class Session:
    def __init__(self, config: dict[str, Any]) -> None:
        self.rules = [(old, new) for old, new in config["rules"]]
        # The blocks run in a fresh __main__ module, as in a shell: classes they define
        # resolve their annotations in it.
        main = types.ModuleType("__main__")
        sys.modules["__main__"] = main
        self.globs: dict[str, Any] = main.__dict__
        self.django = False
        if config.get("settings"):
            os.environ["DJANGO_SETTINGS_MODULE"] = config["settings"]
            self.setup_django()

    def setup_django(self) -> None:
        import django

        django.setup()
        self.django = True

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "exec":
            return self.exec_block(request["source"], request["name"])
        if op == "doctest":
            return self.doctest_block(request)
        if op == "settings":
            return self.settings_block(request["source"], request["name"], request["apply"])
        if op == "cleanup":
            return self.cleanup()
        return {"ok": False, "detail": f"unknown op {op!r}"}

    def exec_block(self, source: str, name: str) -> dict[str, Any]:
        printed = io.StringIO()
        try:
            code = compile(source, name, "exec", dont_inherit=True)
            with contextlib.redirect_stdout(printed):
                exec(code, self.globs)
        except BaseException:
            return {"ok": False, "detail": traceback.format_exc(limit=-8)}
        if printed.getvalue():
            return {
                "ok": False,
                "detail": "the block prints, but a python block's output is not compared: "
                f"show it in a pycon block instead. It printed:\n{printed.getvalue()}",
            }
        return {"ok": True, "detail": ""}

    def doctest_block(self, request: dict[str, Any]) -> dict[str, Any]:
        examples = [
            doctest.Example(
                e["source"],
                e["want"],
                e["exc_msg"],
                e["lineno"],
                e["indent"],
                # JSON made the option flags (ints) strings: ``# doctest: +ELLIPSIS`` lines
                {int(flag): on for flag, on in e["options"].items()},
            )
            for e in request["examples"]
        ]
        test = doctest.DocTest(
            examples, self.globs, request["name"], request["name"], request["lineno"], None
        )
        test.globs = self.globs  # DocTest copies them; the page's blocks share one namespace
        flags = FLAGS | doctest.REPORT_ONLY_FIRST_FAILURE
        runner = doctest.DocTestRunner(Checker(self.rules), verbose=False, optionflags=flags)
        report = io.StringIO()
        runner.run(test, out=report.write, clear_globs=False)
        failed = runner.summarize(verbose=False).failed
        return {"ok": failed == 0, "detail": report.getvalue()}

    def settings_block(self, source: str, name: str, apply: bool) -> dict[str, Any]:
        names: dict[str, Any] = {}
        try:
            exec(compile(source, name, "exec", dont_inherit=True), names)
        except BaseException:
            return {"ok": False, "detail": traceback.format_exc(limit=-8)}
        values = {k: v for k, v in names.items() if k.isupper()}
        if not self.django:
            from django.conf import settings

            base: dict[str, Any] = {"INSTALLED_APPS": ["fluxa_django"], "USE_TZ": False}
            settings.configure(**{**base, **values})
            self.setup_django()
        try:
            from django.test import override_settings

            from fluxa_django.conf import registry_from_settings, reset_engine

            if apply:
                from django.conf import settings

                for key, value in values.items():
                    setattr(settings, key, value)
                reset_engine()
            if "FLUXA" in values:
                fluxa = dict(values["FLUXA"])
                for module in fluxa.get("ENTITIES", []):
                    try:
                        importlib.import_module(module)
                    except ModuleNotFoundError:  # a fragment of another project's settings:
                        fluxa["ENTITIES"] = []  # its pools are checked, not its entities
                with override_settings(**{**values, "FLUXA": fluxa}):
                    registry_from_settings()
        except BaseException:
            return {"ok": False, "detail": traceback.format_exc(limit=-8)}
        return {"ok": True, "detail": ""}

    def cleanup(self) -> dict[str, Any]:
        """Drop the search indexes, documents and cached rows of the project's entities."""
        from fluxa_django.conf import get_engine
        from fluxa_django.runtime.search_index import for_schema
        from fluxa_django.testing.plugin import cache_key_pattern, delete_matching

        engine = get_engine()
        for schema in engine.schemas.values():
            if schema.redis_search is not None:
                for_schema(engine, schema).drop()
            pattern = cache_key_pattern(engine, schema)
            for code in {c for c in (schema.redis_cache, schema.redis_search) if c is not None}:
                delete_matching(engine.redis(code).client, pattern)
        return {"ok": True, "detail": ""}


def main() -> None:
    answers = os.fdopen(int(sys.argv[1]), "w", encoding="utf-8")
    config = json.loads(sys.argv[2])
    sys.path[0] = os.getcwd()  # as `manage.py shell`: the project's packages are importable
    try:
        session = Session(config)
    except BaseException:
        answers.write(json.dumps({"ok": False, "detail": traceback.format_exc()}) + "\n")
        answers.flush()
        return
    answers.write(json.dumps({"ok": True, "detail": "ready"}) + "\n")
    answers.flush()
    for line in sys.stdin:
        answer = session.handle(json.loads(line))
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
