"""Django settings for the test suite."""

from __future__ import annotations

import os

from tests.services import MYSQL_HOST, MYSQL_PORT, REDIS_ADDRESS, REDIS_TEST_DB

# Two checkouts on one machine: give each its own database (and FLUXA_TEST_REDIS_DB).
DATABASE = os.environ.get("FLUXA_TEST_DATABASE", "fluxa_django_tests")

SECRET_KEY = "fluxa-tests-not-secret"
DEBUG = False
USE_TZ = False
# No contrib apps: the suite needs no Django tables, so transactional tests
# have nothing to flush and no post-migrate signals to replay.
INSTALLED_APPS = ["fluxa_django"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": DATABASE,
        "USER": "root",
        "PASSWORD": "",
        "HOST": MYSQL_HOST,
        "PORT": str(MYSQL_PORT),
        "TEST": {"NAME": f"test_{DATABASE}", "CHARSET": "utf8mb4"},
    }
}
FLUXA = {
    "POOLS": {
        "default": {
            "mysql": {"database": "default"},
            "redis": f"{REDIS_ADDRESS}:{REDIS_TEST_DB}",  # reserved for tests: fluxa_ctx flushes it
            "local_cache": 1000,
        },
        # RediSearch indexes only database 0: shared, so the tests never flush it (the
        # keys of this app's namespaces are deleted instead)
        "search": {"redis": f"{REDIS_ADDRESS}:0"},
    },
    "ENTITIES": ["tests.entities"],
    "GENERATED_PACKAGE": "tests.generated",
    "OPTIONS": {"app_name": "fluxa-tests"},
}
ROOT_URLCONF = "tests.urls"
MIDDLEWARE = ["fluxa_django.middleware.FluxaContextMiddleware"]
