"""Measurement helpers: interleaved timings, the "fastest round" statistic, tracemalloc.

Contenders alternate in short blocks (per-call cases) or run by run (bulk cases),
so drift of the machine (other load, MySQL background work, CPU frequency, the
vCPU the server thread lands on) hits all of them alike. Each sample is one
operation timed with ``time.perf_counter_ns`` (or, for in-process operations far
below a microsecond, the mean of a batch of them: ``batched``).

The reported figure of a contender is ``fastest(samples)``: the fastest of its
interleaved rounds (DESIGN.md: on a shared 2-core machine a median of a few runs
swings by tens of percent, so ratios compare each side's fastest run).

* bulk cases (``bulk``): one round is one run, so the figure is the minimum run;
* per-call cases (``per_call``, ``batched``): one round is a block of ``calls``
  calls (or ``batches`` batches) of one contender; the figure is the minimum over
  rounds of each round's **median**. Not the minimum over single calls: a call of
  ~100 µs has a noise floor (a lucky scheduling, a hot cache line) that a min over
  thousands of calls would pick up, so the ratio would compare outliers, not the
  typical call. The per-round median is a typical call in one quiet stretch of
  the machine; the minimum over rounds picks the quietest stretch of each side.

Medians over all samples stay in the JSON (``detail.ns.*.median``) for reference.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


class Samples(list[float]):
    """Timings of one contender, in order, with the number of samples per round.

    ``per_round`` consecutive samples were taken in one interleaved round (1 for
    bulk cases: each run is its own round).
    """

    per_round: int

    def __init__(self, per_round: int = 1) -> None:
        super().__init__()
        self.per_round = per_round

    def rounds(self) -> list[list[float]]:
        size = self.per_round
        return [self[i : i + size] for i in range(0, len(self), size)]


def fastest(values: Sequence[float]) -> float:
    """The contender's figure: minimum over rounds of each round's median (see above).

    For ``Samples`` of bulk runs (one sample per round) this is the minimum run. A
    plain sequence counts as one sample per round (its minimum).
    """
    if isinstance(values, Samples) and values.per_round > 1:
        return min(median(chunk) for chunk in values.rounds())
    return float(min(values))


def _rotated(names: list[str], by: int) -> list[str]:
    shift = by % len(names)
    return names[shift:] + names[:shift]


def per_call(
    contenders: Mapping[str, Callable[[int], object]],
    calls: int,
    rounds: int,
    warmup: int,
) -> dict[str, Samples]:
    """Nanoseconds of every call ``fn(i)`` for ``i`` in ``0..calls*rounds``, per contender.

    Each round runs every contender for ``calls`` calls in a row (order rotated per
    round), after a full garbage collection: garbage one contender leaves (cycles
    only the collector frees) is paid for inside its own block, not by the next
    contender, as it would be if calls alternated one by one.
    """
    names = list(contenders)
    samples = {name: Samples(calls) for name in names}
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
) -> dict[str, Samples]:
    """Mean nanoseconds per call of batches of ``calls`` calls, per contender.

    For operations far below a microsecond, where timing every call would mostly
    measure the clock: ``run(start, stop)`` makes the calls ``start..stop-1`` itself
    (its own loop, no wrapper call per operation) and one sample is the elapsed
    time of a batch divided by ``calls``. Each round runs ``batches`` batches per
    contender (order rotated per round) after a full garbage collection, as
    ``per_call`` does; ``i`` goes on counting up over rounds and batches.
    """
    names = list(contenders)
    samples = {name: Samples(batches) for name in names}
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


def bulk(contenders: Mapping[str, BulkContender], runs: int, warmup: int = 1) -> dict[str, Samples]:
    """Nanoseconds of ``run()`` per contender, ``runs`` times each, interleaved."""
    names = list(contenders)
    samples = {name: Samples(1) for name in names}
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
    """Fastest round, median, mean, 10th and 90th percentile and extremes (the mean shows GC)."""
    ordered = sorted(values)
    last = len(ordered) - 1
    return {
        "fastest": fastest(values),
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
