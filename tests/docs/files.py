"""File blocks (``# some/path.py`` first) and settings fragments of python blocks."""

from __future__ import annotations

import ast
import re

from tests.docs.pages import PYTHON, Block
from tests.docs.projects import Project

_FILE_HEADER = re.compile(r"^#\s*(?P<path>[\w./-]+/[\w.-]+\.(?:py|ini|toml|cfg))\b")
FILE_LANGS = PYTHON | {"ini", "toml", "cfg"}
_SETTINGS_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def file_header(block: Block) -> str | None:
    """The path of a file block (first line ``# some/path.py``), or None."""
    if block.lang not in FILE_LANGS:
        return None
    match = _FILE_HEADER.match(block.text)
    return match["path"] if match else None


def is_settings_fragment(source: str) -> bool:
    """Only imports and assignments to UPPERCASE names (``FLUXA = {...}``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    if not tree.body:
        return False
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                while isinstance(target, ast.Subscript):
                    target = target.value
                if not (isinstance(target, ast.Name) and _SETTINGS_NAME.match(target.id)):
                    return False
        elif not isinstance(node, ast.Import | ast.ImportFrom):
            return False
    return True


def _key(node: ast.stmt) -> tuple[str, str] | None:
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return ("def", node.name)
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name):
            return ("def", target.id)
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return ("def", node.target.id)
    if isinstance(node, ast.Import | ast.ImportFrom):
        return ("import", ast.dump(node))
    return None


def _span(node: ast.stmt) -> tuple[int, int]:
    decorators = getattr(node, "decorator_list", [])
    start = min([node.lineno] + [d.lineno for d in decorators])
    assert node.end_lineno is not None
    return start - 1, node.end_lineno  # 0-based, end exclusive


def merge(old: str, new: str) -> str:
    """``old`` with the top-level definitions of ``new`` replaced or added, as a reader
    applies a snippet: same-named classes, functions and assignments are replaced, new
    imports go after the last import, anything else is appended."""
    old_tree, new_tree = ast.parse(old), ast.parse(new)
    lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    existing = {_key(n): n for n in old_tree.body if _key(n) is not None}
    replacements: list[tuple[int, int, str]] = []
    imports: list[str] = []
    appended: list[str] = []
    for node in new_tree.body:
        start, end = _span(node)
        text = "".join(new_lines[start:end])
        key = _key(node)
        if key is not None and key[0] == "import":
            if key not in existing:
                imports.append(text)
        elif key is not None and key in existing:
            old_start, old_end = _span(existing[key])
            replacements.append((old_start, old_end, text))
        else:
            appended.append(text)
    if imports:
        last = max(
            (_span(n)[1] for n in old_tree.body if isinstance(n, ast.Import | ast.ImportFrom)),
            default=0,
        )
        replacements.append((last, last, "".join(imports)))
    for start, end, text in sorted(replacements, reverse=True):  # from the bottom up
        lines[start:end] = [text]
    merged = "".join(lines)
    if appended:
        merged = merged.rstrip("\n") + "\n\n\n" + "\n\n".join(t.rstrip("\n") for t in appended)
        merged += "\n"
    return merged


def write_file(project: Project, relative: str, text: str) -> None:
    """Write a file block into the project, as a reader applies it; the next python block
    starts a new session (the code changed)."""
    path = project.cwd / relative
    body = text.split("\n", 1)[1] if "\n" in text else ""  # without the `# path` line
    body = project.isolation.text(body)
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
        if path.suffix == ".py" and not path.name.startswith("test_"):  # a new package
            (path.parent / "__init__.py").write_text("")
    if path.suffix == ".py":
        if path.exists():
            body = merge(path.read_text(), body)
        compile(body, str(path), "exec")
    path.write_text(body)
    project.restart()
