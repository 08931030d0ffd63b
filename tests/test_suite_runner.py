"""make test's runner (tests/suite.py) and the isolation of pytest-xdist workers (conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from tests import suite
from tests.conftest import PROJECT_ROOT, _own_redis
from tests.local_postgres import ensure_database, worker_url


def test_workers_come_first_and_default_to_two():
    assert suite.parse([]) == (2, [])
    assert suite.parse(["--workers", "0", "-k", "x"]) == (0, ["-k", "x"])
    assert suite.parse(["--workers=3", "tests/test_text.py"]) == (3, ["tests/test_text.py"])
    # Anywhere else it is the user's pytest argument, passed on untouched.
    assert suite.parse(["-q", "--workers", "1"]) == (2, ["-q", "--workers", "1"])
    with pytest.raises(SystemExit, match="0 or more"):
        suite.parse(["--workers", "-1"])


def test_the_drill_runs_alone_after_the_parallel_part_with_the_same_arguments(tmp_path):
    tallies = (tmp_path / "a.json", tmp_path / "b.json")
    parallel, drill = suite.commands(2, ["-m", "not browser", "-x"], tallies)
    assert parallel[1:] == [
        "-m", "pytest", "-n", "2", "--dist", "loadfile", "--drill=exclude",
        f"--tally={tallies[0]}", "-m", "not browser", "-x",
    ]  # fmt: skip
    assert drill[1:] == [
        "-m", "pytest", "--drill=only", f"--tally={tallies[1]}", "-m", "not browser", "-x",
    ]  # fmt: skip
    serial, _ = suite.commands(0, [], tallies)
    assert "-n" not in serial and "--drill=exclude" in serial


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([0, 0], 0),
        ([0, 5], 0),  # the arguments selected no drill: that is no failure
        ([5, 0], 0),
        ([5, 5], 5),  # nothing selected at all: pytest's own answer
        ([1, 0], 1),
        ([0, 1], 1),  # a failing drill fails the suite
        ([1, 3], 1),
        ([2], 2),  # interrupted: the drill did not run
    ],
)
def test_the_suite_fails_when_either_run_fails(statuses, expected):
    assert suite.outcome(statuses) == expected


def test_the_closing_line_adds_up_both_runs_and_counts_errors_as_failed():
    parallel = {"passed": 3800, "failed": 1, "error": 2, "skipped": 40, "deselected": 2}
    drill = {"passed": 2, "failed": 0, "error": 0, "skipped": 0, "deselected": 3843}
    assert suite.total([parallel, drill]) == "suite: 3802 passed, 3 failed, 40 skipped"
    assert suite.total([]) == "suite: 0 passed, 0 failed, 0 skipped"


def test_each_worker_gets_a_database_and_a_redis_db_of_its_own():
    base = "postgresql://postgres:secret@127.0.0.1:5432/test_x"
    assert worker_url(base, "gw0") == "postgresql://postgres:secret@127.0.0.1:5432/test_x_gw0"
    assert worker_url(base, "gw1").endswith("/test_x_gw1")
    assert _own_redis("redis://127.0.0.1:6379/0", 1) == "redis://127.0.0.1:6379/1"
    assert _own_redis("redis://127.0.0.1:6379", 2) == "redis://127.0.0.1:6379/2"
    assert _own_redis("rediss://:pw@h:6380/3", 1) == "rediss://:pw@h:6380/4"
    assert _own_redis("unix:///tmp/r.sock?db=2", 1) == "unix:///tmp/r.sock?db=3"
    assert _own_redis("unix:///tmp/r.sock", 0) == "unix:///tmp/r.sock?db=0"


def test_this_worker_runs_on_its_own_database(request):
    """Under make test, ECRM_TEST_DATABASE_URL names this worker's database, not the suite's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    url = os.environ.get("ECRM_TEST_DATABASE_URL")
    if worker is None or not url:
        pytest.skip("not in a pytest-xdist worker on PostgreSQL: no database of its own to check")
    assert sa.engine.make_url(url).database.endswith(f"_{worker}")
    engine = sa.create_engine(
        sa.engine.make_url(url).set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool
    )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_database()")).scalar() == (
            sa.engine.make_url(url).database
        )
    engine.dispose()


def test_a_missing_database_is_created_and_a_refusal_says_why():
    url = os.environ.get("ECRM_TEST_DATABASE_URL")
    if not url:
        pytest.skip("PostgreSQL variant: ECRM_TEST_DATABASE_URL is unset")
    fresh = worker_url(url, f"new{uuid.uuid4().hex[:8]}")
    name = sa.engine.make_url(fresh).database
    admin = sa.create_engine(
        sa.engine.make_url(url).set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    try:
        assert ensure_database(fresh) is None  # created
        assert ensure_database(fresh) is None  # there already
        with admin.connect() as conn:
            assert (
                conn.execute(
                    sa.text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": name}
                ).scalar()
                == 1
            )
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
    nobody = sa.engine.make_url(url).set(username=f"nobody{uuid.uuid4().hex[:6]}")
    why = ensure_database(nobody.render_as_string(hide_password=False))
    assert why and "refused" in why and "does not exist" in why


def _run_suite(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECRM_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "tests.suite", *args, "-p", "no:cacheprovider"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_make_tests_runner_keeps_the_drill_out_of_the_parallel_part():
    done = _run_suite("tests/test_fault_drill.py", "tests/test_text.py", "--collect-only", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    parallel, drill = done.stdout.split("== the fault drill, alone")
    assert "test_fault_drill.py::" not in parallel and "tests/test_text.py::" in parallel
    assert "-n 2 --dist loadfile --drill=exclude" in parallel
    assert "test_fault_drill.py::test_fault_drill[sqlite]" in drill
    assert "tests/test_text.py::" not in drill


def test_make_tests_runner_counts_both_runs_in_its_closing_line():
    # One worker is enough to count through xdist's controller, and costs one process start less.
    selected = "adds_up or either_run_fails"
    done = _run_suite("--workers", "1", "tests/test_suite_runner.py", "-k", selected)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "1 worker [9 items]" in done.stdout
    assert lines[-1] == "suite: 9 passed, 0 failed, 0 skipped", done.stdout[-2000:]
    assert lines[-2] == "== exit statuses [0, 5]: the suite's is 0"
