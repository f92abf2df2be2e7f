"""Each page runs on its own databases: names are moved in what runs, and back in outputs.

The docs name the databases a reader would use (``shop``, ``fluxa_shop``, Redis database
0). Before a block runs, ``Isolation.text`` rewrites, in its code or commands:

- the database of a MySQL DSN (``...@tcp(127.0.0.1:3306)/shop``, ``mysql://.../shop``) and
  a ``"NAME": "shop"`` of ``DATABASES`` to ``<prefix>shop``;
- the example shop's ``fluxa_shop`` wherever it stands alone (``mariadb fluxa_shop``);
- the Redis database of ``127.0.0.1:6380:<db>``, ``redis://127.0.0.1:6380/<db>`` and
  ``register_redis("127.0.0.1:6380", db=<db>)`` to the suite's Redis database;
- the database of a ClickHouse URI (``clickhouse://127.0.0.1:9000/default``) to
  ``<prefix>default`` (the runner creates it);
- with ``redis-db=0`` (Redis Search needs database 0), and in the example shop (it has
  searchable fields), Redis databases stay as written and ``"app_name"`` gets the prefix
  instead, so every key and index name is the page's own.

The prefix is ``<FLUXA_TEST_DATABASE>_d_<page>_``, so two checkouts with different
``FLUXA_TEST_DATABASE`` never share a database. ``Isolation.normalize`` removes the prefix
(and the project's temporary folder) from outputs before they are compared with the page.
Fluxa's own cache keys are namespaced by the MySQL database's identity, so pages sharing the
suite's Redis database never read each other's rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tests.services import (
    MYSQL_HOST,
    MYSQL_PORT,
    PLAIN_REDIS_ADDRESS,
    REDIS_ADDRESS,
    REDIS_TEST_DB,
)
from tests.settings import DATABASE

DOCS_MYSQL = "127.0.0.1:3306"
DOCS_REDIS = "127.0.0.1:6380"
DOCS_PLAIN_REDIS = "127.0.0.1:6379"  # a Redis without the search module
REAL_MYSQL = f"{MYSQL_HOST}:{MYSQL_PORT}"

_DSN = re.compile(
    r"(?P<head>(?:@tcp\([^)\s]*\)|@unix\([^)\s]*\)|(?:mysql|mariadb)://[^\s/\"']*)/)"
    r"(?P<db>[A-Za-z_]\w*)"
)
_NAME = re.compile(r"(?P<head>[\"']NAME[\"']\s*:\s*[\"'])(?P<db>[A-Za-z_]\w*)(?=[\"'])")
_REDIS = re.compile(re.escape(DOCS_REDIS) + r"(?P<sep>:|/)(?P<db>\d+)")
_REDIS_ARG = re.compile(
    r"(?P<head>[\"']" + re.escape(DOCS_REDIS) + r"[\"'],\s*(?:db|database)=)(?P<db>\d+)"
)
_CLICKHOUSE = re.compile(r"(?P<head>clickhouses?://[^\s/\"']*/)(?P<db>[A-Za-z_]\w*)")
_APP_NAME = re.compile(r"(?P<head>[\"']app_name[\"'](?:\s*:\s*|,\s*)[\"'])(?P<name>[^\"']+)")


def page_prefix(page: str, project: int = 0) -> str:
    slug = re.sub(r"\W", "_", page.removesuffix(".md"))
    suffix = f"{project}_" if project else ""
    return f"{DATABASE}_d_{slug}_{suffix}"


@dataclass(frozen=True)
class Isolation:
    prefix: str
    redis_db: int = REDIS_TEST_DB
    databases: tuple[str, ...] = ()
    rewrite: bool = True  # False: blocks run as written (the page makes no writes)
    search: bool = False  # redis-db=0: Redis database 0, keys namespaced by app_name
    paths: dict[str, str] = field(default_factory=dict)  # real folder -> folder shown
    clickhouse: set[str] = field(default_factory=set)  # ClickHouse databases named so far
    created: set[str] = field(default_factory=set)  # ... and created by the runner

    def db(self, name: str) -> str:
        return name if name.startswith(self.prefix) else self.prefix + name

    def text(self, text: str) -> str:
        if not self.rewrite:
            return text
        text = _DSN.sub(lambda m: m["head"] + self.db(m["db"]), text)
        text = _NAME.sub(lambda m: m["head"] + self.db(m["db"]), text)
        text = _CLICKHOUSE.sub(lambda m: m["head"] + self._clickhouse(m["db"]), text)
        for name in self.databases:
            text = re.sub(rf"(?<![\w./-]){re.escape(name)}(?![\w.-])", self.db(name), text)
        if self.search:  # Redis databases as written (Redis Search refuses any but 0)
            text = _APP_NAME.sub(lambda m: m["head"] + self.db(m["name"]), text)
        else:
            text = _REDIS.sub(lambda m: f"{REDIS_ADDRESS}{m['sep']}{self.redis_db}", text)
            text = _REDIS_ARG.sub(lambda m: m["head"] + str(self.redis_db), text)
        if REAL_MYSQL != DOCS_MYSQL:
            text = text.replace(DOCS_MYSQL, REAL_MYSQL)
        if REDIS_ADDRESS != DOCS_REDIS:
            text = text.replace(DOCS_REDIS, REDIS_ADDRESS)
        if PLAIN_REDIS_ADDRESS != DOCS_PLAIN_REDIS:
            text = text.replace(DOCS_PLAIN_REDIS, PLAIN_REDIS_ADDRESS)
        return text

    def _clickhouse(self, name: str) -> str:
        mapped = self.db(name)
        self.clickhouse.add(mapped)
        return mapped

    def normalize(self, output: str) -> str:
        """An output as the page shows it: no prefix, no temporary folder."""
        for real, shown in self.paths.items():
            output = output.replace(real, shown)
        output = output.replace(self.prefix, "")
        if REAL_MYSQL != DOCS_MYSQL:
            output = output.replace(REAL_MYSQL, DOCS_MYSQL)
        if REDIS_ADDRESS != DOCS_REDIS:
            output = output.replace(REDIS_ADDRESS, DOCS_REDIS)
        return output

    def rules(self) -> list[tuple[str, str]]:
        """``normalize`` as literal (old, new) replacements, for the worker process."""
        rules = [*self.paths.items(), (self.prefix, "")]
        if REAL_MYSQL != DOCS_MYSQL:
            rules.append((REAL_MYSQL, DOCS_MYSQL))
        if REDIS_ADDRESS != DOCS_REDIS:
            rules.append((REDIS_ADDRESS, DOCS_REDIS))
        return rules
