"""The seed programs run as plain Python scripts, with no Django settings in the process.

SPEC §3 "No Django needed below the glue": ``Registry`` -> ``validate()`` -> ``generate()``
-> contexts, flush and queries work in a program that never configures Django, and
importing ``fluxa_django`` does not import Django's ORM. Each script (tests/seeds/scripts/)
gets a fresh MySQL database, the suite's Redis test database and a directory for the
generated package; it prints ``SEED OK`` last and asserts ``"django.db" not in sys.modules``.
The in-process versions of the same programs are in test_seed_programs.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fluxa_django.testing.plugin import clear_redis_db
from tests.services import REDIS_ADDRESS, REDIS_TEST_DB, mysql_uri

SCRIPTS = Path(__file__).parent / "scripts"
MARKER = "SEED OK"


def _env_without_django() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=_env_without_django(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def redis_test_db() -> Iterator[int]:
    """The suite's Redis test database, flushed afterwards (as ``fluxa_ctx`` does before)."""
    yield REDIS_TEST_DB
    host, port = REDIS_ADDRESS.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port), db=REDIS_TEST_DB)
    try:
        clear_redis_db(client)
    finally:
        client.close()


@pytest.mark.parametrize(
    "script", ["seed_01_introduction.py", "seed_03_fake_delete.py"], ids=["seed01", "seed03"]
)
def test_seed_script_runs_without_django(
    script: str, mysql_db: str, redis_test_db: int, tmp_path: Path
) -> None:
    out = tmp_path / "generated"
    result = _run(
        [
            str(SCRIPTS / script),
            "--mysql-uri",
            mysql_uri(mysql_db),
            "--redis",
            REDIS_ADDRESS,
            "--redis-db",
            str(redis_test_db),
            "--out",
            str(out),
        ],
        cwd=tmp_path,
    )
    report = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, report
    assert result.stdout.splitlines()[-1:] == [MARKER], report
    assert (out / ("intro_generated" if "01" in script else "fake_delete_generated")).is_dir()


def test_importing_fluxa_django_does_not_import_django_orm(tmp_path: Path) -> None:
    code = "import fluxa_django, sys; assert 'django.db' not in sys.modules"
    result = _run(["-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
