"""Measurement helpers: interleaved timings (medians) and tracemalloc differences.

Contenders alternate in short blocks (per-call cases) or run by run (bulk cases),
so drift of the machine (other load, MySQL background work, CPU frequency, the
vCPU the server thread lands on) hits all of them alike. Each sample is one
operation timed with ``time.perf_counter_ns`` (or, for in-process operations far
below a microsecond, the mean of a batch of them: ``batched``); results are medians.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


def _rotated(names: list[str], by: int) -> list[str]:
    shift = by % len(names)
    return names[shift:] + names[:shift]


def per_call(
    contenders: Mapping[str, Callable[[int], object]],
    calls: int,
    rounds: int,
    warmup: int,
) -> dict[str, list[int]]:
    """Nanoseconds of every call ``fn(i)`` for ``i`` in ``0..calls*rounds``, per contender.

    Each round runs every contender for ``calls`` calls in a row (order rotated per
    round), after a full garbage collection: garbage one contender leaves (cycles
    only the collector frees) is paid for inside its own block, not by the next
    contender, as it would be if calls alternated one by one.
    """
    names = list(contenders)
    samples: dict[str, list[int]] = {name: [] for name in names}
    for name in names:
        fn = contenders[name]
        for i in range(warmup):
            fn(i)
    clock = time.perf_counter_ns
    for round_ in range(rounds):
        for name in _rotated(names, round_):
            fn = contenders[name]
            out = samples[name]
            gc.collect()
            for i in range(round_ * calls, (round_ + 1) * calls):
                started = clock()
                fn(i)
                out.append(clock() - started)
    return samples


def batched(
    contenders: Mapping[str, Callable[[int, int], object]],
    calls: int,
    batches: int,
    rounds: int,
    warmup: int,
) -> dict[str, list[float]]:
    """Mean nanoseconds per call of batches of ``calls`` calls, per contender.

    For operations far below a microsecond, where timing every call would mostly
    measure the clock: ``run(start, stop)`` makes the calls ``start..stop-1`` itself
    (its own loop, no wrapper call per operation) and one sample is the elapsed
    time of a batch divided by ``calls``. Each round runs ``batches`` batches per
    contender (order rotated per round) after a full garbage collection, as
    ``per_call`` does; ``i`` goes on counting up over rounds and batches.
    """
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        contenders[name](0, warmup)
    clock = time.perf_counter_ns
    for round_ in range(rounds):
        for name in _rotated(names, round_):
            run = contenders[name]
            out = samples[name]
            gc.collect()
            start = round_ * batches * calls
            for _ in range(batches):
                started = clock()
                run(start, start + calls)
                out.append((clock() - started) / calls)
                start += calls
    return samples


class BulkContender(Protocol):
    """One contender of a bulk case: only ``run`` is timed."""

    def prepare(self) -> None: ...

    def run(self) -> None: ...

    def verify(self) -> None: ...


def bulk(
    contenders: Mapping[str, BulkContender], runs: int, warmup: int = 1
) -> dict[str, list[int]]:
    """Nanoseconds of ``run()`` per contender, ``runs`` times each, interleaved."""
    names = list(contenders)
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for round_ in range(warmup + runs):
        for name in _rotated(names, round_):
            contender = contenders[name]
            contender.prepare()
            gc.collect()
            started = clock()
            contender.run()
            elapsed = clock() - started
            contender.verify()
            if round_ >= warmup:
                samples[name].append(elapsed)
    return samples


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, mean, 10th and 90th percentile and extremes (the mean shows GC pauses)."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return {
        "median": median(ordered),
        "mean": statistics.fmean(ordered),
        "p10": float(ordered[last // 10]),
        "p90": float(ordered[last - last // 10]),
        "min": float(ordered[0]),
        "max": float(ordered[-1]),
    }


class GcDisabled:
    """A bulk contender run with the cyclic garbage collector off (how much is GC?)."""

    def __init__(self, inner: BulkContender) -> None:
        self.inner = inner

    def prepare(self) -> None:
        self.inner.prepare()

    def run(self) -> None:
        gc.disable()
        try:
            self.inner.run()
        finally:
            gc.enable()

    def verify(self) -> None:
        self.inner.verify()


@dataclass(frozen=True)
class MemoryUse:
    """Bytes still allocated while a loaded result is held, and where they were allocated."""

    total: int
    top: list[tuple[str, int]]  # "file:line" -> bytes, largest first


def retained(load: Callable[[], object], top: int = 6) -> MemoryUse:
    """tracemalloc snapshot difference between before ``load()`` and while holding its result."""
    gc.collect()
    tracemalloc.start()
    try:
        ignore = [
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        ]
        before = tracemalloc.take_snapshot().filter_traces(ignore)
        held = load()
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(ignore)
        del held
    finally:
        tracemalloc.stop()
    stats = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in stats)
    sites = [
        (f"{_short(stat.traceback[0].filename)}:{stat.traceback[0].lineno}", stat.size_diff)
        for stat in stats[:top]
        if stat.size_diff > 0
    ]
    return MemoryUse(total, sites)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/fluxa_django/", "/bench/", "/.fluxa/"):
        index = filename.find(marker)
        if index >= 0:
            return filename[index + 1 if marker.startswith("/") else index + len(marker) :]
    return filename
