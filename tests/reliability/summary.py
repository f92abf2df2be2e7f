"""Figures the reliability tests measured, shown at the end of the pytest run.

``tests/reliability/conftest.py`` prints ``LINES`` in the terminal summary, and
``record`` also writes them to ``.fluxa/reliability/<name>.json`` (git-ignored)
so that they can be quoted in the docs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LINES: list[str] = []
OUTPUT = Path(__file__).resolve().parents[2] / ".fluxa" / "reliability"


def record(name: str, lines: list[str], data: dict[str, Any]) -> None:
    LINES.extend(lines)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
