"""Console blocks: ``$ command`` lines, each followed by the output it shows.

A block runs as one bash script in the project's folder (so ``cd`` and ``$?`` carry over
from one command to the next), with stderr merged into stdout as a terminal shows them.
A command continues on the next lines while its quotes are open or a line ends with ``\\``.
Outputs are compared like doctest's ``ELLIPSIS | NORMALIZE_WHITESPACE``: ``...`` matches
anything, runs of whitespace are equal. A command that shows no output is not compared,
but it must succeed (exit status 0).

``python manage.py runserver`` starts the server in the background on a free port until
the block ends; the block's later commands reach it at the ``127.0.0.1:8000`` they show.
"""

from __future__ import annotations

import doctest
import re
import shlex
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

_SEPARATOR = "@@docs-test-separator@@"
_RUNSERVER = re.compile(r"^python (?:-\S+ )*manage\.py runserver\s*$")
_CHECKER = doctest.OutputChecker()
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass
class Command:
    lineno: int
    text: str
    expected: str | None  # None: the block shows no output for it


def _complete(text: str) -> bool:
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:  # a quote is still open
        return False
    return True


def parse(text: str, first_line: int) -> list[Command]:
    """The commands of a console block; ``first_line`` is the line of the block's first line."""
    commands: list[Command] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            raise ValueError(
                f"line {first_line + i}: output before the first `$ ` command: {line!r}"
            )
        lineno = first_line + i
        command = line[2:]
        i += 1
        while not _complete(command) and i < len(lines):
            command += "\n" + lines[i]
            i += 1
        output: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        expected = "\n".join(output).strip("\n")
        commands.append(Command(lineno, command, expected + "\n" if output else None))
    return commands


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def script(commands: list[Command], log_dir: Path) -> str:
    """The bash script of a block: each command, then a separator line with its number."""
    lines = [
        "exec 2>&1",
        "__docs_server=",
        "trap '[ -n \"$__docs_server\" ] && kill $__docs_server 2>/dev/null' EXIT",
    ]
    port = None
    for number, command in enumerate(commands):
        text = command.text
        if _RUNSERVER.match(text.split("#")[0].strip()):
            port = _free_port()
            log = log_dir / f"runserver-{port}.log"
            text = (
                f"{text.split('#')[0].strip()} 127.0.0.1:{port} --noreload >{log} 2>&1 &\n"
                "__docs_server=$!\n"
                f"for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null "
                "&& break; kill -0 $__docs_server 2>/dev/null || break; sleep 0.05; done\n"
                f"kill -0 $__docs_server 2>/dev/null || {{ cat {log}; (exit 1); }}"
            )
        elif port is not None:
            text = text.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            text = text.replace("localhost:8000", f"127.0.0.1:{port}")
        lines.append(text)
        lines.append(f"__docs_rc=$?; printf '\\n{_SEPARATOR} %s %s\\n' {number} $__docs_rc")
        lines.append("(exit $__docs_rc)")
    return "\n".join(lines) + "\n"


def run(
    commands: list[Command], cwd: Path, env: dict[str, str], log_dir: Path, timeout: float = 300
) -> list[tuple[str, int]]:
    """Each command's output and exit status (missing commands: the script stopped)."""
    completed = subprocess.run(
        ["bash", "-c", script(commands, log_dir)],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    text = completed.stdout.decode("utf-8", "replace")
    results: list[tuple[str, int]] = []
    pattern = re.compile(rf"\n?{_SEPARATOR} (\d+) (\d+)\n")
    position = 0
    for match in pattern.finditer(text):
        results.append((text[position : match.start()], int(match[2])))
        position = match.end()
    if len(results) < len(commands):
        results.append((text[position:], -1))
    return results


def matches(expected: str, got: str) -> bool:
    return _CHECKER.check_output(expected, got, _FLAGS)


def difference(expected: str, got: str) -> str:
    example = doctest.Example("command", expected)
    return _CHECKER.output_difference(example, got, _FLAGS)
