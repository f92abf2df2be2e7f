"""Command line of the benchmark suite (see ``python -m bench --help``)."""

from __future__ import annotations

import argparse
import cProfile
import datetime
import importlib.metadata
import io
import os
import platform
import pstats
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.settings import configure_django


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def machine_info(mysql: str, redis: str, repo: Path) -> dict[str, Any]:
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "mysql": mysql,
        "redis": redis,
        "django": _version("Django"),
        "mysqlclient": _version("mysqlclient"),
        "redis_py": _version("redis"),
        "fluxa_django": _version("fluxa-django"),
        "git_commit": _git(repo, "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git(repo, "status", "--porcelain", "--untracked-files=no")),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    from bench.cases import CASES
    from bench.results import RESULTS_DIR

    keys = [case.key for case in CASES]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="fluxa_django vs raw mysqlclient/redis-py vs the Django ORM (DESIGN.md targets).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="far fewer iterations: a smoke run, noisy numbers"
    )
    parser.add_argument(
        "--case", action="append", choices=keys, help="run only this case (repeatable)"
    )
    parser.add_argument(
        "--profile",
        choices=keys,
        metavar="CASE",
        help=f"profile the fluxa side of one case with cProfile instead ({', '.join(keys)})",
    )
    parser.add_argument(
        "--keep-db", action="store_true", help="do not drop the fluxa_bench database at the end"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="where to write the JSON results (default: bench/results/latest.json)",
    )
    return parser.parse_args(argv)


def print_profile(profiler: cProfile.Profile, limit: int = 30) -> None:
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(limit)
        print(f"\n=== fluxa side, sorted by {order} ===")
        print(out.getvalue())


def main(argv: list[str]) -> int:
    configure_django()  # before anything imports bench.models
    args = parse_args(argv)

    from bench import environment
    from bench.case import FULL, QUICK
    from bench.cases import CASES
    from bench.results import CaseResult, notes, table, write_json

    try:
        versions = environment.check_services()
    except environment.ServiceUnavailable as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    scale = QUICK if args.quick else FULL
    selected = [c for c in CASES if args.case is None or c.key in args.case]
    if args.profile:
        selected = [c for c in CASES if c.key == args.profile]
    env = None
    started = time.monotonic()
    try:
        env = environment.open_env(versions)
        cases = [cls(env, scale) for cls in selected]
        if args.profile:
            profiler = cProfile.Profile()
            env.share_connection()
            cases[0].profile(profiler)
            print_profile(profiler)
            return 0
        results: list[CaseResult] = []
        for case in cases:
            print(f"running {case.title} ...", file=sys.stderr, flush=True)
            env.share_connection()
            results.append(case.run())
    finally:
        environment.close_env(env, keep_database=args.keep_db)
    elapsed = time.monotonic() - started
    print()
    print(table(results))
    print()
    print("notes:")
    print(notes(results))
    machine = machine_info(versions.mysql, versions.redis, environment.REPO)
    print(
        f"\npython {machine['python']}, {versions.mysql}, redis {versions.redis}, "
        f"{machine['cpu_count']} CPU(s): {machine['cpu']}; {elapsed:.0f} s"
    )
    config = {
        "scale": "quick" if args.quick else "full",
        "cases": [c.key for c in selected],
        "seconds": round(elapsed, 1),
        "rows": environment.ROWS,
        "statistic": (
            "fastest of interleaved rounds per operation: bulk cases the minimum run, "
            "per-call cases the minimum over rounds of each round's median "
            "(bench/timing.py); memory: median bytes of the repeats"
        ),
        "connections": "raw and fluxa share fluxa's pooled MySQL connection; Django has its own",
        "gc": "enabled (a full collection before every timed block/run)",
    }
    write_json(args.output, machine, config, results)
    print(f"wrote {args.output}")
    missed = [r.key for r in results if not r.met]
    if missed:
        print(f"targets missed (reported, not enforced): {', '.join(missed)}")
    return 0
