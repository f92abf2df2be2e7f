"""Settings of the example shop: one MySQL + Redis pool, a local cache, ClickHouse and Kafka."""

from __future__ import annotations

import os
from pathlib import Path

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = False
ROOT_URLCONF = "example_project.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "fluxa_django",
    "shop",
]
MIDDLEWARE = ["fluxa_django.middleware.FluxaContextMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}

MYSQL = os.environ.get("FLUXA_EXAMPLE_MYSQL", "root:@tcp(127.0.0.1:3306)/fluxa_shop")
FLUXA = {
    "POOLS": {
        "default": {
            "mysql": {"uri": MYSQL},
            "redis": os.environ.get("FLUXA_EXAMPLE_REDIS", "127.0.0.1:6380:0"),
            "local_cache": 100000,
        },
        # Order analytics (shop/analytics.py): ClickHouse embedded through chDB by default,
        # so no server is needed; FLUXA_EXAMPLE_CLICKHOUSE may name a clickhouse:// server.
        "analytics": {
            "clickhouse": {
                "uri": os.environ.get(
                    "FLUXA_EXAMPLE_CLICKHOUSE",
                    f"chdb://{Path(__file__).resolve().parents[2] / '.fluxa' / 'chdb-shop'}",
                )
            }
        },
        "events": {"kafka": {"brokers": [os.environ.get("FLUXA_EXAMPLE_KAFKA", "127.0.0.1:9092")]}},
    },
    "ENTITIES": ["shop.entities"],
    "CLICKHOUSE_TABLES": ["shop.analytics"],
    "GENERATED_PACKAGE": "shop.fluxa",
    "OPTIONS": {"app_name": "shop"},
}
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"fluxa_django": {"handlers": ["console"], "level": "INFO"}},
}
