"""shared/seeds/01-introduction.txt, both programs, as a plain Python script.

No Django settings anywhere in the process: the seed's workflow (``Registry`` ->
``validate()`` -> ``generate()`` -> contexts, flush, queries) must work without them
(SPEC §3 "No Django needed below the glue"). Run by tests/seeds/test_seed_scripts.py:

    python seed_01_introduction.py --mysql-uri URI --redis HOST:PORT --redis-db N --out DIR

The generated package is written to ``DIR/intro_generated`` and imported from there.
Prints ``SEED OK`` as its last line when every assertion held.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import fluxa_django
from fluxa_django import DEFAULT_POOL_CODE, Engine, Query, Registry
from fluxa_django.migrate import apply_alters, plan_mysql

if TYPE_CHECKING:  # mypy sees this directory as the namespace package tests.seeds.scripts
    from tests.seeds.scripts.intro_entities import UserEntity
else:  # run as a script, this directory is sys.path[0]
    from intro_entities import UserEntity

PACKAGE = "intro_generated"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mysql-uri", required=True, help="an empty database: tables are created")
    parser.add_argument("--redis", required=True, help="HOST:PORT of Redis Stack")
    parser.add_argument("--redis-db", required=True, type=int)
    parser.add_argument("--out", required=True, help="directory the generated package goes into")
    return parser.parse_args(argv)


def build_engine(args: argparse.Namespace) -> Engine:
    """Step 2: register entities and pools; step 3 (first half): validate."""
    registry = Registry()
    registry.register_mysql(args.mysql_uri, DEFAULT_POOL_CODE, None)
    registry.register_redis(args.redis, args.redis_db, DEFAULT_POOL_CODE, None)
    registry.register_local_cache(DEFAULT_POOL_CODE, 100000)
    registry.register_entity(UserEntity)
    return registry.validate()


def first_program(args: argparse.Namespace) -> None:
    """Register, validate, create the tables, generate the typed package."""
    engine = build_engine(args)
    try:
        apply_alters(engine, plan_mysql(engine).alters)  # the table `UserEntity`
        changed = fluxa_django.generate(engine, os.path.join(args.out, PACKAGE))
        assert "__init__.py" in changed, changed
        assert "user_entity.py" in changed, changed
        assert plan_mysql(engine).alters == []
    finally:
        engine.close()


def using_generated_code(args: argparse.Namespace) -> None:
    """The second program: "Using Generated Code"."""
    engine = build_engine(args)  # ... registry setup and validation as above ...
    try:
        sys.path.insert(0, args.out)
        entities: Any = importlib.import_module(PACKAGE)
        provider = entities.UserEntityProvider

        ctx = engine.new_context()

        # Create a new entity
        user = provider.new(ctx)
        user.name = "Alice"
        user.email = "alice@example.com"
        user.age = 30
        ctx.flush()
        assert user.id == 1, user.id  # the first id of a fresh table

        # Fetch by ID (a new context: the row comes from the caches or MySQL, not memory)
        fetched = provider.get_by_id(engine.new_context(), 1)
        assert fetched is not None
        print(fetched.name)  # "Alice"
        print(fetched.age)  # 30
        assert fetched.name == "Alice"
        assert fetched.email == "alice@example.com"
        assert fetched.age == 30
        assert isinstance(fetched, entities.UserEntity)

        # More users, so that the filter and the sort have something to do
        for name, email, age in [
            ("Bob", "bob@example.com", 12),
            ("Aaron", "aaron@example.com", 18),
        ]:
            other = provider.new(ctx)
            other.name = name
            other.email = email
            other.age = age
        ctx.flush()

        # Search with type-safe query builder
        users = provider.search_many(
            ctx,
            Query().filter(provider.fields.age.gte(18)).sort_by_asc(provider.fields.name),
        )
        for u in users:
            print(u.name, u.email)
        assert [(u.name, u.email) for u in users] == [
            ("Aaron", "aaron@example.com"),
            ("Alice", "alice@example.com"),
        ]
        rows = engine.mysql().query("SELECT id, name, age FROM UserEntity ORDER BY id")
        assert [tuple(r) for r in rows] == [(1, "Alice", 30), (2, "Bob", 12), (3, "Aaron", 18)]
    finally:
        engine.close()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    assert "DJANGO_SETTINGS_MODULE" not in os.environ
    first_program(args)
    using_generated_code(args)
    assert "django.db" not in sys.modules, "the seed program imported Django's ORM"
    print("SEED OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
