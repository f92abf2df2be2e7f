"""The round-trip observers, for the runtime's modules (defined in ``fluxa_django.observe``,
below the backends, which report through them too)."""

from __future__ import annotations

from fluxa_django.observe import OBSERVERS, Observer, notify

__all__ = ["OBSERVERS", "Observer", "notify"]
