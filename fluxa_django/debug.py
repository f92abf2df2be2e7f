"""Django error reports without fluxa's credentials.

Django's ``SafeExceptionReporterFilter`` hides settings whose *name* looks secret
(``PASSWORD``, ``SECRET_KEY``...), but the pool URIs of ``FLUXA`` carry their
passwords inside values (``mysql://shop:s3cret@db/shop``,
``host:6379:0?password=s3cret``), and the local variables of the frames of a
failed connection hold them too (the driver's ``passwd`` argument). This filter
scrubs, in every setting and every frame variable of a report (HTML and text,
``DEBUG`` on or off):

- the password part of any URI or DSN (``user:password@``, ``password=...``);
- the values of keys that look secret (``passwd``, ``password``, ``sasl_password``...);
- every credential configured in ``FLUXA`` and ``DATABASES``, wherever it appears
  (an object whose ``repr`` shows one is replaced by its scrubbed ``repr``).

The AppConfig installs it as ``DEFAULT_EXCEPTION_REPORTER_FILTER`` unless the
project set its own filter (subclass this one then).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from django.conf import settings
from django.views.debug import SafeExceptionReporterFilter

DJANGO_DEFAULT = "django.views.debug.SafeExceptionReporterFilter"
PATH = "fluxa_django.debug.FluxaExceptionReporterFilter"

# The password of "scheme://user:password@host", of a Go DSN "user:password@tcp(...)"
# and of "?password=..." / "&password=...".
_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]+)(@)")
_DSN_PASSWORD = re.compile(r"^([^:@/\s]+:)([^@]+)(@(?:tcp|unix)\()")
_PARAM_PASSWORD = re.compile(r"((?:^|[?&;\s])(?:password|passwd|pass|secret)=)([^&;\s]+)", re.I)
_SECRET_KEY = re.compile(r"PASS|SECRET", re.I)  # passwd, password, sasl_password, secret
_MIN_LITERAL = 4  # shorter configured secrets are scrubbed by the patterns only


def _passwords_in(text: str) -> set[str]:
    found: set[str] = set()
    for pattern in (_URI_PASSWORD, _DSN_PASSWORD, _PARAM_PASSWORD):
        for match in pattern.finditer(text):
            found.add(match.group(2))
            found.add(urllib.parse.unquote(match.group(2)))
    return found


def _collect(value: Any, out: set[str], key: str = "") -> None:
    if isinstance(value, str):
        if key and _SECRET_KEY.search(key) and value:
            out.add(value)
        out |= _passwords_in(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect(v, out, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            _collect(v, out, key)


_SECRET_SETTINGS = ("FLUXA", "DATABASES", "CACHES")
_memo: list[Any] = [None, frozenset()]  # (the setting objects read, their secrets)


def configured_secrets() -> frozenset[str]:
    """Every credential in ``settings.FLUXA``, ``DATABASES`` and ``CACHES`` (collected
    again only when one of those settings is replaced: a report asks for every setting
    and every frame)."""
    values = tuple(getattr(settings, name, None) for name in _SECRET_SETTINGS)
    if _memo[0] is not None and all(a is b for a, b in zip(_memo[0], values, strict=True)):
        secrets: frozenset[str] = _memo[1]
        return secrets
    found: set[str] = set()
    for value in values:
        _collect(value, found)
    secrets = frozenset(s for s in found if len(s) >= _MIN_LITERAL)
    _memo[:] = [values, secrets]
    return secrets


class FluxaExceptionReporterFilter(SafeExceptionReporterFilter):
    """``SafeExceptionReporterFilter`` that also scrubs credentials inside values."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        return self.scrub(super().cleanse_setting(key, value))

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        secrets = configured_secrets()
        return [(name, self.scrub(value, secrets)) for name, value in variables]

    def scrub(self, value: Any, secrets: frozenset[str] | None = None) -> Any:
        """``value`` with every credential replaced by the cleansed substitute."""
        if secrets is None:
            secrets = configured_secrets()
        return self._scrub(value, secrets, 0)

    def _scrub(self, value: Any, secrets: frozenset[str], depth: int) -> Any:
        stars = self.cleansed_substitute
        if isinstance(value, str):
            text = _URI_PASSWORD.sub(lambda m: m.group(1) + stars + m.group(3), value)
            text = _DSN_PASSWORD.sub(lambda m: m.group(1) + stars + m.group(3), text)
            text = _PARAM_PASSWORD.sub(lambda m: m.group(1) + stars, text)
            for secret in secrets:
                if secret in text:
                    text = text.replace(secret, stars)
            return text
        if depth > 20 or value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, dict):
            return {
                k: stars
                if isinstance(k, str) and _SECRET_KEY.search(k) and v
                else self._scrub(v, secrets, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            scrubbed = [self._scrub(v, secrets, depth + 1) for v in value]
            return scrubbed if isinstance(value, list) else tuple(scrubbed)
        try:
            shown = repr(value)
        except Exception:
            return value
        cleaned = self._scrub(shown, secrets, depth + 1)
        return value if cleaned == shown else cleaned


def install() -> None:
    """Use this filter unless the project chose its own (called by the AppConfig)."""
    from django.views.debug import get_default_exception_reporter_filter

    if getattr(settings, "DEFAULT_EXCEPTION_REPORTER_FILTER", DJANGO_DEFAULT) == DJANGO_DEFAULT:
        settings.DEFAULT_EXCEPTION_REPORTER_FILTER = PATH
        get_default_exception_reporter_filter.cache_clear()  # type: ignore[attr-defined]
