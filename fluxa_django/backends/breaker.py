"""``Breaker``: a pool whose server just made a call wait fails at once for a while.

Without it, every request would pay the connect timeout of a pool whose server
is hung or unreachable. After a failure that cost a wait (at least half the
timeout: a hung server, a host that does not answer), calls raise ``PoolError``
naming the pool at once for ``pause`` seconds; the first call after that tries
the server again, and a success closes the breaker: the pool is used again
without a restart. A failure that was immediate (connection refused: the server
is down) opens nothing: trying again costs nothing, and a restarted server is
used at once.
"""

from __future__ import annotations

import threading
import time

from fluxa_django.errors import PoolError

PAUSE = 5.0  # seconds a failed pool is not tried again


class Breaker:
    def __init__(self, kind: str, code: str, pause: float = PAUSE) -> None:
        self.kind = kind
        self.code = code
        self.pause = pause
        self.reason: str | None = None  # why the last try failed (no credentials)
        self._until = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self.reason is None else f"open: {self.reason}"
        return f"<Breaker {self.kind} {self.code!r} {state}>"

    def is_open(self) -> bool:
        """True while the pause after a failure lasts."""
        return self.reason is not None and time.monotonic() < self._until

    def check(self) -> None:
        """Raise ``PoolError`` at once while the pause after a failure lasts."""
        reason = self.reason
        if reason is not None:
            left = self._until - time.monotonic()
            if left > 0:
                raise PoolError(
                    f"{self.kind} pool {self.code!r} is unavailable ({reason}); "
                    f"not tried again for {left:.1f} s",
                    pool=self.code,
                )

    def failed(self, reason: str, waited: float, timeout: float) -> None:
        """A try failed after ``waited`` seconds (of at most ``timeout``): open the
        breaker when the failure cost a wait."""
        if waited >= timeout / 2:
            self.open(reason)

    def open(self, reason: str) -> None:
        with self._lock:
            self.reason = reason
            self._until = time.monotonic() + self.pause

    def ok(self) -> None:
        if self.reason is not None:
            with self._lock:
                self.reason = None
