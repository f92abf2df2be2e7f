"""A writer process that dies (SIGKILL) right after its flush committed, before it
announced the commit (``python -m tests.reliability.killed_writer``); used by
``test_killed_writer.py``."""

from __future__ import annotations

import argparse
import os
import signal

from fluxa_django.runtime.observe import OBSERVERS
from tests.cache_helpers import build_engine
from tests.generated import ProductEntityProvider


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--redis-db", type=int, required=True)
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    engine = build_engine(args.database, args.redis, args.redis_db)
    ctx = engine.new_context()
    product = ProductEntityProvider.must_get_by_id(ctx, args.id)
    product.name = args.name

    def die_after_commit(source: str, operation: str) -> None:
        if (source, operation) == ("redis", "release"):  # COMMIT done, nothing announced
            os.kill(os.getpid(), signal.SIGKILL)

    OBSERVERS.append(die_after_commit)
    ctx.flush()
    raise SystemExit("the writer was not killed")


if __name__ == "__main__":
    main()
