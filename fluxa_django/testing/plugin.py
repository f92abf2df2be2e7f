"""The pytest plugin: fixtures for tests of projects that use fluxa_django.

``fluxa_engine`` gives the process engine built from the ``FLUXA`` setting.
"""

from __future__ import annotations

import pytest

from fluxa_django.engine import Engine


@pytest.fixture(scope="session")
def fluxa_engine() -> Engine:
    """The validated engine from ``settings.FLUXA`` (built once per session)."""
    from fluxa_django.conf import get_engine

    return get_engine()
