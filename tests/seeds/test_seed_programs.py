"""The seed programs, translated to Python with the SPEC's names, run against real services.

- "Using Generated Code" from shared/seeds/01-introduction.txt
- "Example: Full Lifecycle" from shared/seeds/03-fake-delete.txt
"""

from __future__ import annotations

from fluxa_django import Context, Pager, Query, Where
from tests.generated import DeletableUserEntityProvider, UserEntityProvider


def test_using_generated_code(fluxa_ctx: Context) -> None:
    ctx = fluxa_ctx
    # Create a new entity
    user = UserEntityProvider.new(ctx)
    user.name = "Alice"
    user.email = "alice@example.com"
    user.age = 30
    ctx.flush()

    # Fetch by ID (a new context: the row comes from MySQL, not from memory)
    fetched = UserEntityProvider.get_by_id(fluxa_ctx.engine.new_context(), user.id)
    assert fetched is not None
    assert fetched.name == "Alice"
    assert fetched.age == 30

    minor = UserEntityProvider.new(ctx)
    minor.name = "Bob"
    minor.email = "bob@example.com"
    minor.age = 12
    adult = UserEntityProvider.new(ctx)
    adult.name = "Aaron"
    adult.email = "aaron@example.com"
    adult.age = 18
    ctx.flush()

    # Search with type-safe query builder
    users = UserEntityProvider.search_many(
        ctx,
        Query()
        .filter(UserEntityProvider.fields.age.gte(18))
        .sort_by_asc(UserEntityProvider.fields.name),
    )
    assert [(u.name, u.email) for u in users] == [
        ("Aaron", "aaron@example.com"),
        ("Alice", "alice@example.com"),
    ]


def test_fake_delete_full_lifecycle(fluxa_ctx: Context) -> None:
    ctx = fluxa_ctx
    # Create a new user
    user = DeletableUserEntityProvider.new(ctx)
    user.name = "Alice"
    user.email = "alice@example.com"
    ctx.flush()

    # Soft delete the user
    user.delete()
    ctx.flush()

    # The user is excluded from normal searches
    users = DeletableUserEntityProvider.search(ctx, Where("1"), Pager(1, 100))
    assert users == []

    # But can still be loaded by ID
    loaded = DeletableUserEntityProvider.get_by_id(ctx.engine.new_context(), user.id)
    assert loaded is not None
    assert loaded.fake_delete is True

    # Include deleted users in search
    where = Where("1")
    where.with_fake_deletes()
    all_users = DeletableUserEntityProvider.search(ctx, where, Pager(1, 100))
    assert [u.id for u in all_users] == [user.id]

    # Permanently remove the user
    user.force_delete()
    ctx.flush()

    # The row is now deleted from the database
    assert DeletableUserEntityProvider.get_by_id(ctx.engine.new_context(), user.id) is None
    assert ctx.engine.mysql().query_row("SELECT COUNT(*) FROM DeletableUserEntity") == (0,)
