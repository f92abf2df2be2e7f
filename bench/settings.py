"""Service addresses and the in-process Django configuration of the benchmarks.

The benchmarks own one MySQL database, ``fluxa_bench`` (created and dropped by
the run; ``FLUXA_BENCH_DATABASE``), and Redis database 15 (``FLUXA_BENCH_REDIS_DB``);
on Redis database 0 they own only the keys and index of their search entity.
Addresses can be overridden with the same environment variables the test suite uses.
"""

from __future__ import annotations

import os
from typing import Any

MYSQL_HOST = os.environ.get("FLUXA_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("FLUXA_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = "root"
MYSQL_PASSWORD = ""
DATABASE = os.environ.get("FLUXA_BENCH_DATABASE", "fluxa_bench")
REDIS_ADDRESS = os.environ.get("FLUXA_TEST_REDIS", "127.0.0.1:6380")
REDIS_DB = int(os.environ.get("FLUXA_BENCH_REDIS_DB", "15"))
# Redis Search indexes only database 0, which other users of the server share: the
# search pool's keys are namespaced (by the fresh database's identity and APP_NAME),
# never flushed; the run drops its own index and keys (bench/environment.py).
SEARCH_POOL = "search"
SEARCH_REDIS_DB = 0
APP_NAME = "fluxa-bench"
LOCAL_CACHE_LIMIT = 100_000  # keys of the local cache pool (an LRU; more than the bench holds)

MYSQL_URI = f"{MYSQL_USER}:{MYSQL_PASSWORD}@tcp({MYSQL_HOST}:{MYSQL_PORT})/{DATABASE}"


def mysql_connect_kwargs(database: str | None = DATABASE) -> dict[str, Any]:
    """mysqlclient ``connect()`` arguments; the same session settings as fluxa's pool."""
    kwargs: dict[str, Any] = {
        "host": MYSQL_HOST,
        "port": MYSQL_PORT,
        "user": MYSQL_USER,
        "passwd": MYSQL_PASSWORD,
        "charset": "utf8mb4",
        "autocommit": True,
        "connect_timeout": 5,
    }
    if database is not None:
        kwargs["db"] = database
    return kwargs


def django_settings() -> dict[str, Any]:
    """Settings of the benchmark's Django process: ``fluxa_django`` plus the ``bench`` app."""
    return {
        "DEBUG": False,  # DEBUG=True would record every query
        "USE_TZ": False,  # fluxa stores naive UTC datetimes
        "SECRET_KEY": "fluxa-bench-not-secret",
        "INSTALLED_APPS": ["fluxa_django", "bench"],
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.mysql",
                "NAME": DATABASE,
                "USER": MYSQL_USER,
                "PASSWORD": MYSQL_PASSWORD,
                "HOST": MYSQL_HOST,
                "PORT": str(MYSQL_PORT),
                "OPTIONS": {"charset": "utf8mb4"},
                "CONN_MAX_AGE": None,  # keep the one connection for the whole run
            }
        },
    }


def configure_django() -> None:
    """Configure Django in-process and load the apps (idempotent)."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(**django_settings())
    django.setup()
