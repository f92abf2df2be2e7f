"""shared/seeds/03-fake-delete.txt, "Example: Full Lifecycle", as a plain Python script.

No Django settings anywhere in the process (SPEC §3 "No Django needed below the glue").
Run by tests/seeds/test_seed_scripts.py:

    python seed_03_fake_delete.py --mysql-uri URI --redis HOST:PORT --redis-db N --out DIR

The generated package is written to ``DIR/fake_delete_generated`` and imported from there.
Prints ``SEED OK`` as its last line when every assertion held.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import fluxa_django
from fluxa_django import DEFAULT_POOL_CODE, Pager, Registry, Where
from fluxa_django.migrate import apply_alters, plan_mysql

if TYPE_CHECKING:  # mypy sees this directory as the namespace package tests.seeds.scripts
    from tests.seeds.scripts.fake_delete_entities import UserEntity
else:  # run as a script, this directory is sys.path[0]
    from fake_delete_entities import UserEntity

PACKAGE = "fake_delete_generated"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mysql-uri", required=True, help="an empty database: tables are created")
    parser.add_argument("--redis", required=True, help="HOST:PORT of Redis Stack")
    parser.add_argument("--redis-db", required=True, type=int)
    parser.add_argument("--out", required=True, help="directory the generated package goes into")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    assert "DJANGO_SETTINGS_MODULE" not in os.environ

    registry = Registry()
    registry.register_mysql(args.mysql_uri, DEFAULT_POOL_CODE, None)
    registry.register_redis(args.redis, args.redis_db, DEFAULT_POOL_CODE, None)
    registry.register_entity(UserEntity)
    engine = registry.validate()
    try:
        apply_alters(engine, plan_mysql(engine).alters)
        fluxa_django.generate(engine, os.path.join(args.out, PACKAGE))
        sys.path.insert(0, args.out)
        generated: Any = importlib.import_module(PACKAGE)
        full_lifecycle(engine, generated.UserEntityProvider)
    finally:
        engine.close()

    assert "django.db" not in sys.modules, "the seed program imported Django's ORM"
    print("SEED OK")
    return 0


def full_lifecycle(engine: fluxa_django.Engine, provider: Any) -> None:
    ctx = engine.new_context()

    # Create a new user
    user = provider.new(ctx)
    user.name = "Alice"
    user.email = "alice@example.com"
    ctx.flush()
    user_id = user.id

    # Soft delete the user
    user.delete()
    ctx.flush()
    # The row stays, marked with its own id (SPEC §2), not removed
    marker = engine.mysql().query_row("SELECT fake_delete FROM UserEntity WHERE id = ?", user_id)
    assert marker == (user_id,), marker

    # The user is excluded from normal searches
    users = provider.search(ctx, Where("1"), Pager(1, 100))
    assert users == [], users  # users does not include Alice

    # But can still be loaded by ID
    loaded = provider.get_by_id(engine.new_context(), user_id)
    assert loaded is not None  # found = true
    assert loaded.fake_delete is True  # user.GetFakeDelete() = true

    # Include deleted users in search
    where = Where("1")
    where.with_fake_deletes()
    all_users = provider.search(ctx, where, Pager(1, 100))
    assert [u.id for u in all_users] == [user_id]  # allUsers includes Alice
    assert all_users[0].name == "Alice"

    # Permanently remove the user
    user.force_delete()
    ctx.flush()

    # The row is now deleted from the database
    assert engine.mysql().query_row("SELECT COUNT(*) FROM UserEntity") == (0,)
    assert provider.get_by_id(engine.new_context(), user_id) is None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
