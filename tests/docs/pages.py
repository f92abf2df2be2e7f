"""A docs page as the runner sees it: fenced blocks and ``<!-- docs-test: ... -->`` markers.

The first marker of a page is the page marker and names its project
(``<!-- docs-test: project=shop -->``). Every later marker belongs to the fenced block
right after it (blank lines may separate them). A marker is ``key=value`` pairs and flags,
split like a shell line (``reason="two words"``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"

_MARKER = re.compile(r"<!--\s*docs-test:(?P<body>.*?)-->", re.S)
_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")

# Blocks in these languages must run or carry a skip marker with a reason.
PYTHON = {"python", "py"}
SESSION = {"pycon"}
CONSOLE = {"console", "bash", "sh", "shell"}
RUNNABLE = PYTHON | SESSION | CONSOLE

PROJECTS = {"none", "shop", "shop-empty", "new", "getting-started"}
PAGE_KEYS = {"project", "root", "databases", "app", "rewrite", "redis-db", "cwd"}
BLOCK_KEYS = {"skip", "reason", "excerpt-of", "settings", "project", "output-of", "pytest"}


@dataclass
class Block:
    page: str
    lineno: int  # the line of the opening fence, 1-based
    lang: str
    text: str  # the lines between the fences, with a final newline
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.lineno}"

    @property
    def runnable(self) -> bool:
        return self.lang in RUNNABLE


@dataclass
class Page:
    path: Path
    options: dict[str, str]
    blocks: list[Block]
    problems: list[str]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def project(self) -> str:
        return self.options.get("project", "")


def parse_options(body: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for token in shlex.split(body):
        key, sep, value = token.partition("=")
        options[key] = value if sep else ""
    return options


def read_page(path: Path) -> Page:
    lines = path.read_text(encoding="utf-8").splitlines()
    page = Page(path, {}, [], [])
    pending: tuple[int, dict[str, str]] | None = None  # a block marker waiting for its fence
    seen_marker = False
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.search(line) if "<!--" in line else None
        if marker is not None and "docs-test:" in line:
            end = i
            if "-->" not in line:  # a marker over several lines
                while end + 1 < len(lines) and "-->" not in lines[end]:
                    end += 1
                marker = _MARKER.search("\n".join(lines[i : end + 1]))
            assert marker is not None
            options = parse_options(marker["body"])
            if not seen_marker:
                seen_marker = True
                page.options = options
                unknown = set(options) - PAGE_KEYS
                if "project" not in options:
                    page.problems.append(
                        f"docs/{path.name}:{i + 1}: the first docs-test marker must name the "
                        "page's project (project=...)"
                    )
                elif options["project"] not in PROJECTS:
                    page.problems.append(
                        f"docs/{path.name}:{i + 1}: unknown project {options['project']!r} "
                        f"(one of {sorted(PROJECTS)})"
                    )
            else:
                if pending is not None:
                    page.problems.append(
                        f"docs/{path.name}:{pending[0]}: marker not followed by a fenced block"
                    )
                pending = (i + 1, options)
                unknown = set(options) - BLOCK_KEYS
                if "skip" in options and not options.get("reason"):
                    page.problems.append(
                        f'docs/{path.name}:{i + 1}: a skip needs a reason (skip reason="...")'
                    )
            if unknown:
                page.problems.append(
                    f"docs/{path.name}:{i + 1}: unknown marker key(s) {sorted(unknown)}"
                )
            i = end + 1
            continue
        fence = _FENCE.match(line)
        if fence is not None:
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            text = "\n".join(body) + "\n"
            options = pending[1] if pending is not None else {}
            pending = None
            page.blocks.append(Block(path.name, start + 1, fence["lang"], text, options))
            i += 1
            continue
        if pending is not None and line.strip():
            page.problems.append(
                f"docs/{path.name}:{pending[0]}: marker not followed by a fenced block"
            )
            pending = None
        i += 1
    if pending is not None:
        page.problems.append(
            f"docs/{path.name}:{pending[0]}: marker not followed by a fenced block"
        )
    if not seen_marker:
        page.problems.append(
            f"docs/{path.name}: no <!-- docs-test: project=... --> marker: say how the page's "
            "examples run (see docs/testing.md, 'How these docs are tested')"
        )
    return page


def all_pages() -> list[Page]:
    return [read_page(path) for path in sorted(DOCS.glob("*.md"))]
