"""Settings of the example shop: one MySQL + Redis pool, a local cache, ClickHouse and Kafka
(with the async flush: ``POST /orders/async/`` orders are written by
``manage.py fluxa_consume_async``)."""

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
OPTIONS = {"app_name": "shop"}
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
        "events": {
            "kafka": {
                "brokers": [os.environ.get("FLUXA_EXAMPLE_KAFKA", "127.0.0.1:9092")],
                # The development broker is shared (other applications, test runs):
                # fluxa_migrate deletes none of their topics and consumer groups.
                "ignored_topics": ["*"],
                "ignored_consumer_groups": ["*"],
            }
        },
    },
    "ENTITIES": ["shop.entities"],
    "CLICKHOUSE_TABLES": ["shop.analytics"],
    "GENERATED_PACKAGE": "shop.fluxa",
    "OPTIONS": OPTIONS,
    # ctx.flush_async() publishes to _fluxa_async_sql on the "events" pool (fluxa_migrate
    # creates the topics); `manage.py fluxa_consume_async` applies the records. The group is
    # this application's own: another application on the broker skips the shop's records
    # and the shop skips theirs. One partition: Tansu, the development broker, cannot add
    # partitions later (give a production topic as many as consumers may run).
    "ASYNC_FLUSH": {
        "kafka_pool": "events",
        "topic_partitions": 1,
        "consumer_group": OPTIONS["app_name"] + ".async-flush",
    },
}
LOGGING = {
    "version": 1,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"fluxa_django": {"handlers": ["console"], "level": "INFO"}},
}
