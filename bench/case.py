"""What every benchmark case shares: the ``Case`` base, the ``Scale`` and the row check."""

from __future__ import annotations

import cProfile
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.environment import BenchEnv
from bench.fluxa_types import BenchItem as FluxaItem
from bench.models import BenchItemBase
from bench.results import TIMES, CaseResult, Target
from bench.timing import Samples, fastest, median, spread


@dataclass(frozen=True)
class Scale:
    """How many measurements each case takes (``QUICK`` is a smoke run)."""

    get_calls: int = 250
    get_rounds: int = 16
    get_warmup: int = 300
    search_calls: int = 20
    search_rounds: int = 16
    search_warmup: int = 15
    bulk_runs: int = 7
    memory_repeats: int = 3
    cache_ids: int = 1_000  # distinct ids the cache-hit cases read (warmed untimed)
    hit_calls: int = 1_000  # calls per timed batch of the in-process hit cases
    hit_batches: int = 20  # batches per contender and round
    hit_rounds: int = 16
    redis_search_calls: int = 60  # calls per round of the Redis Search case
    # many short rounds: the fastest round's median of each contender then falls in a
    # quiet moment of this shared machine for both (16 rounds left it to chance)
    redis_search_rounds: int = 48
    redis_search_warmup: int = 50


FULL = Scale()
QUICK = Scale(
    get_calls=100,
    get_rounds=4,
    get_warmup=50,
    search_calls=10,
    search_rounds=3,
    search_warmup=3,
    bulk_runs=2,
    memory_repeats=1,
    cache_ids=200,
    hit_calls=200,
    hit_batches=5,
    hit_rounds=4,
    redis_search_calls=30,
    redis_search_rounds=4,
    redis_search_warmup=10,
)


class Case(ABC):
    key: ClassVar[str]
    title: ClassVar[str]
    target: ClassVar[Target]

    def __init__(self, env: BenchEnv, scale: Scale) -> None:
        self.env = env
        self.scale = scale

    @abstractmethod
    def run(self) -> CaseResult:
        """Measure the three contenders (and any extra fluxa variants)."""

    @abstractmethod
    def profile(self, profiler: cProfile.Profile) -> None:
        """Run the fluxa side with ``profiler`` enabled around the measured part only."""

    def result(self, samples: Mapping[str, Sequence[float]], per: str, **kwargs: Any) -> CaseResult:
        """The case's result: each contender's fastest round (``bench.timing.fastest``).

        The medians over all samples go to ``detail`` (and the fluxa/raw ratio of
        the medians to the notes), for comparison with the fastest-round ratio.
        """
        detail = kwargs.setdefault("detail", {})
        detail["ns"] = {name: spread(v) for name, v in samples.items()}
        detail["rounds"] = {
            name: len(v) // v.per_round if isinstance(v, Samples) else len(v)
            for name, v in samples.items()
        }
        medians = {name: median(samples[name]) for name in ("fluxa", "raw", "django")}
        detail["median_fluxa_raw"] = round(medians["fluxa"] / medians["raw"], 4)
        kwargs.setdefault("notes", []).append(
            f"medians over all samples: fluxa/raw {medians['fluxa'] / medians['raw']:.2f}"
            f"{TIMES}, django/raw {medians['django'] / medians['raw']:.2f}{TIMES} "
            f"(reference; the table compares fastest rounds)"
        )
        return CaseResult(
            key=self.key,
            title=self.title,
            unit="ns",
            per=per,
            fluxa=fastest(samples["fluxa"]),
            raw=fastest(samples["raw"]),
            django=fastest(samples["django"]),
            target=self.target,
            samples=len(samples["fluxa"]),
            **kwargs,
        )


def same_item(item: FluxaItem, row: tuple[Any, ...], obj: BenchItemBase) -> bool:
    """The fluxa entity, the raw row and the Django object hold the same values."""
    return (
        item.id == row[0] == obj.id
        and item.name == row[1] == obj.name
        and item.price == float(row[2]) == float(obj.price)
        and item.quantity == row[3] == obj.quantity
        and item.active == bool(row[4]) == obj.active
        and item.created_at == row[5] == obj.created_at
        and item.category == row[6] == obj.category
    )
