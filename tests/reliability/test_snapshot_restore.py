"""A Redis brought back from an older snapshot never serves the rows it restored
(SPEC §5): cache keys carry the Redis server's epoch (its run id, new at every
restart), so the entries of the snapshot are never read; ids never repeat either
(they come from MySQL). The Redis here is a real server that the test snapshots
(SAVE), kills and restarts from that snapshot."""

from __future__ import annotations

from fluxa_django import Context
from tests.cache_helpers import RedisServer, build_engine, redis_value, tiers_of, users
from tests.generated import UserEntityProvider

U = UserEntityProvider


def test_a_restored_snapshot_is_never_served(fluxa_ctx: Context, redis_server: RedisServer) -> None:
    engine = build_engine(fluxa_ctx.engine.mysql().database, redis_server.address, 0)
    try:
        (user,) = users(engine.new_context(), 1, "Before")
        assert U.must_get_by_id(engine.new_context(), user.id).name == "Before0"
        old_key = tiers_of(engine, U).key(user.id)
        assert redis_value(engine, U, user.id) is not None, "cached in Redis"
        redis_server.client().save()  # the snapshot holds the old row

        ctx = engine.new_context()
        changed = U.must_get_by_id(ctx, user.id)
        changed.name = "After"
        ctx.flush()
        assert U.must_get_by_id(engine.new_context(), user.id).name == "After"

        redis_server.kill()
        redis_server.start()  # loads the snapshot: the old row is back in Redis
        assert redis_server.client().exists(old_key) == 1, "the snapshot was restored"
        assert U.must_get_by_id(engine.new_context(), user.id).name == "After"
        assert U.must_get_by_id(engine.new_context(), user.id).name == "After"
        found = U.get_by_unique_index_email(engine.new_context(), "before0@example.com")
        assert found is not None and found.name == "After"

        other = build_engine(fluxa_ctx.engine.mysql().database, redis_server.address, 0)
        try:  # a process started after the restore
            assert U.must_get_by_id(other.new_context(), user.id).name == "After"
        finally:
            other.close()
        fresh = U.new(engine.new_context())
        assert fresh.id > user.id, "ids do not repeat"
    finally:
        engine.close()
