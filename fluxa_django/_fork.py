"""Fork safety: objects that hold sockets or threads reset themselves in a forked child."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any


def reset_in_child(method: Callable[[], Any]) -> None:
    """Call the bound ``method`` in every forked child, as long as its object is alive."""
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is not None:
            bound()

    os.register_at_fork(after_in_child=call)
