"""The seam to an outer framework that owns transactions (Django's ``atomic()``).

The runtime never imports a web framework. What it needs from one is this
small interface, asked only for MySQL pools tied to a framework connection
(``MySQLPool.django_alias``) or, for ``in_transaction``/``on_commit``, for the
framework's default connection:

- ``connection(alias)``: the raw DB-API connection of a transaction that is
  open on ``alias`` right now, or ``None``. Reads and flushes then run on it
  and so join that transaction (read-your-writes; nothing uncommitted cached).
- ``in_transaction(alias)``: is a transaction open on ``alias`` (``None``: the
  framework's default connection)? Side effects of a flush (cache
  invalidation of alias pools, hooks) then wait for its commit.
- ``savepoint(alias)``: a savepoint inside that transaction; a failed flush
  rolls back its own statements only.
- ``on_commit(alias, fn)``: run ``fn`` once that transaction commits (never,
  if it rolls back).

``OuterTransactions`` itself is the plain default: no outer transaction ever,
so the runtime commits its own transactions and runs side effects at once.
The Django adapter (``fluxa_django.transactions.DjangoTransactions``) is
installed by ``FluxaConfig.ready()``; a plain Python program needs nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


class OuterTransactions:
    """No outer framework: the default, and the base class of adapters."""

    name = "none"

    def connection(self, alias: str) -> Any | None:
        """The raw connection of a transaction open on ``alias``, else ``None``."""
        return None

    def in_transaction(self, alias: str | None) -> bool:
        """True while a transaction is open on ``alias`` (``None``: the default connection)."""
        return False

    @contextlib.contextmanager
    def savepoint(self, alias: str) -> Iterator[None]:
        """A savepoint inside the open transaction on ``alias``."""
        yield

    def on_commit(self, alias: str | None, fn: Callable[[], None]) -> None:
        """Run ``fn`` after the transaction on ``alias`` commits (now, when none is open)."""
        fn()


_active: list[OuterTransactions] = [OuterTransactions()]


def active() -> OuterTransactions:
    """The installed adapter (the plain default unless a framework installed one)."""
    return _active[0]


def install(adapter: OuterTransactions) -> None:
    """Install ``adapter`` for this process (Django's AppConfig does this)."""
    _active[0] = adapter


def uninstall() -> None:
    """Go back to the plain default (tests)."""
    _active[0] = OuterTransactions()
