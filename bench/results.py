"""Case results, targets, the printed table and ``bench/results/latest.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RESULTS_DIR = Path(__file__).resolve().parent / "results"


TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class Target:
    """A DESIGN.md target: fluxa/raw at most ``max_ratio`` (and optionally faster than Django).

    ``design_django`` is the Django/raw ratio DESIGN.md expects (for comparison only).
    ``min_speedup`` asks Django to be at least that many times slower than fluxa, and
    ``max_ns`` is an absolute bound on fluxa's figure (nanoseconds); a target with
    only ``max_ns`` (``max_ratio=None``) does not compare with the raw baseline.
    """

    max_ratio: float | None
    design_django: float | None
    beat_django: bool = False
    min_speedup: float | None = None
    max_ns: float | None = None

    @property
    def text(self) -> str:
        parts: list[str] = []
        if self.max_ns is not None:
            parts.append(f"\N{LESS-THAN OR EQUAL TO} {show_ns(self.max_ns)}")
        if self.max_ratio is not None:
            parts.append(f"\N{LESS-THAN OR EQUAL TO} {self.max_ratio:.2f}{TIMES} raw")
        if self.min_speedup is not None:
            parts.append(f"django \N{GREATER-THAN OR EQUAL TO} {self.min_speedup:g}{TIMES} fluxa")
        elif self.beat_django:
            parts.append("< django")
        return ", ".join(parts)

    @property
    def django_hint(self) -> str:
        if self.design_django is not None:
            return f"design \N{ALMOST EQUAL TO} {self.design_django:.1f}{TIMES}"
        if self.min_speedup is not None:
            return f"target \N{GREATER-THAN OR EQUAL TO} {self.min_speedup:g}{TIMES} fluxa"
        if self.beat_django:
            return "design: > fluxa"
        return "reference"

    def met(self, fluxa: float, raw: float, django: float) -> bool:
        ok = True
        if self.max_ns is not None:
            ok = fluxa <= self.max_ns
        if self.max_ratio is not None:
            ok = ok and fluxa <= self.max_ratio * raw
        if self.min_speedup is not None:
            ok = ok and django >= self.min_speedup * fluxa
        return ok and fluxa < django if self.beat_django else ok


@dataclass
class CaseResult:
    """Fastest rounds (nanoseconds per operation, ``bench.timing.fastest``) or median bytes
    of one case, for the three contenders."""

    key: str
    title: str
    unit: Literal["ns", "bytes"]
    per: str  # what one measured operation is
    fluxa: float
    raw: float
    django: float
    target: Target
    samples: int  # measurements per contender
    extras: dict[str, float] = field(default_factory=dict)  # more figures in ``unit``
    notes: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)  # free-form, JSON only
    # Failed untimed checks (e.g. the call was not served by the cache tier the case is
    # about): the timings do not measure what the case says, so the target is not met.
    problems: list[str] = field(default_factory=list)

    @property
    def fluxa_ratio(self) -> float:
        return self.fluxa / self.raw

    @property
    def django_ratio(self) -> float:
        return self.django / self.raw

    @property
    def met(self) -> bool:
        return not self.problems and self.target.met(self.fluxa, self.raw, self.django)

    def show(self, value: float) -> str:
        return show_bytes(value) if self.unit == "bytes" else show_ns(value)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "case": self.title,
            "unit": self.unit,
            "per": self.per,
            "fluxa": self.fluxa,
            "raw": self.raw,
            "django": self.django,
            "fluxa_raw": round(self.fluxa_ratio, 4),
            "django_raw": round(self.django_ratio, 4),
            "fluxa_django": round(self.fluxa / self.django, 4),
            "target": self.target.text,
            "target_max_ratio": self.target.max_ratio,
            "target_beat_django": self.target.beat_django,
            "target_min_speedup": self.target.min_speedup,
            "target_max_ns": self.target.max_ns,
            "design_django_raw": self.target.design_django,
            "met": self.met,
            "problems": self.problems,
            "samples": self.samples,
            "extras": self.extras,
            "notes": self.notes,
            "detail": self.detail,
        }


def show_ns(ns: float) -> str:
    if ns >= 1_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    if ns >= 1_000:
        return f"{ns / 1_000:.1f} µs"
    return f"{ns:.0f} ns"


def show_bytes(size: float) -> str:
    if abs(size) >= 1_000_000:
        return f"{size / 1_000_000:.2f} MB"
    if abs(size) >= 1_000:
        return f"{size / 1_000:.1f} kB"
    return f"{size:.0f} B"


HEADER = ("case", "fluxa", "raw", "django", "fluxa/raw", "django/raw", "target", "met?")


def table(results: list[CaseResult]) -> str:
    """The results as a fixed-width text table (one row per case)."""
    rows = [HEADER]
    for r in results:
        rows.append(
            (
                r.title,
                r.show(r.fluxa),
                r.show(r.raw),
                r.show(r.django),
                f"{r.fluxa_ratio:.2f}{TIMES}",
                f"{r.django_ratio:.2f}{TIMES} ({r.target.django_hint})",
                r.target.text,
                "yes" if r.met else "NO (check failed)" if r.problems else "NO",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = {1, 2, 3, 4}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return " | ".join(cells).rstrip()

    out = [line(rows[0]), "-+-".join("-" * w for w in widths)]
    out.extend(line(row) for row in rows[1:])
    return "\n".join(out)


def notes(results: list[CaseResult]) -> str:
    lines: list[str] = []
    for r in results:
        lines.extend(f"  {r.key}: CHECK FAILED: {problem}" for problem in r.problems)
        for name, value in r.extras.items():
            lines.append(f"  {r.key}: {name} = {r.show(value)} ({value / r.raw:.2f}{TIMES} raw)")
        lines.extend(f"  {r.key}: {note}" for note in r.notes)
    return "\n".join(lines)


def write_json(
    path: Path, machine: dict[str, Any], config: dict[str, Any], results: list[CaseResult]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine,
        "config": config,
        "cases": [r.as_json() for r in results],
        "table": table(results),
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
