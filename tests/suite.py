"""The whole suite as ``make test`` runs it: in parallel, then the fault drill alone.

``python -m tests.suite [--workers N] [pytest arguments]`` runs pytest twice with the same
arguments:

1. everything but the fault drill on N pytest-xdist workers (``-n N --dist loadfile``: a test
   file's module fixtures, such as a trained model, are made once, on one worker), each with its
   own PostgreSQL database, Redis and temporary folders (tests/conftest.py);
2. the fault drill (mark ``drill``) alone: it kills a PostgreSQL backend, after which the
   server resets every connection to every database and recovers, failing whatever ran beside it.

Both runs print their own results and skip reasons; the last line adds them up. The exit status
is the first failing run's (pytest's codes), 5 only when neither run selected a test.
``--workers 0`` runs the first part in this process's pytest, without workers.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NO_TESTS = 5  # pytest's exit status when nothing was selected
COUNTED = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def parse(argv: list[str]) -> tuple[int, list[str]]:
    """(workers, the pytest arguments): ``--workers N`` or ``--workers=N`` first, else 2."""
    workers = 2
    if argv and argv[0] == "--workers":
        workers, argv = int(argv[1]), argv[2:]
    elif argv and argv[0].startswith("--workers="):
        workers, argv = int(argv[0].split("=", 1)[1]), argv[1:]
    if workers < 0:
        raise SystemExit(f"--workers must be 0 or more, not {workers}")
    return workers, argv


def commands(workers: int, args: list[str], tallies: tuple[Path, Path]) -> list[list[str]]:
    """The two pytest invocations: the parallel part, then the drill."""
    pytest = [sys.executable, "-m", "pytest"]
    parallel = ["-n", str(workers), "--dist", "loadfile"] if workers else []
    return [
        pytest + parallel + ["--drill=exclude", f"--tally={tallies[0]}"] + args,
        pytest + ["--drill=only", f"--tally={tallies[1]}"] + args,
    ]


def outcome(statuses: list[int]) -> int:
    """The suite's exit status: the first run that failed, else 0 (5 if neither ran a test)."""
    failing = [s for s in statuses if s not in (0, NO_TESTS)]
    if failing:
        return failing[0]
    return NO_TESTS if all(s == NO_TESTS for s in statuses) else 0


def total(tallies: list[dict]) -> str:
    """One line for both runs: 'suite: N passed, N failed, N skipped' (errors count as failed)."""
    sums = {kind: sum(t.get(kind, 0) for t in tallies) for kind in COUNTED}
    line = f"suite: {sums['passed']} passed, {sums['failed'] + sums['error']} failed"
    return line + f", {sums['skipped']} skipped"


def main(argv: list[str]) -> int:
    workers, args = parse(argv)
    statuses, tallies = [], []
    with tempfile.TemporaryDirectory(prefix="ecrm-suite-") as folder:
        paths = (Path(folder) / "parallel.json", Path(folder) / "drill.json")
        titles = ("the suite without the fault drill", "the fault drill, alone")
        for title, command, path in zip(titles, commands(workers, args, paths), paths, strict=True):
            print(f"== {title}: {shlex.join(command[1:])}", flush=True)
            statuses.append(subprocess.run(command, cwd=PROJECT_ROOT).returncode)
            if path.exists():
                tallies.append(json.loads(path.read_text()))
            if statuses[-1] in (2, 4):  # interrupted (Ctrl-C), or pytest refused the arguments
                break
    status = outcome(statuses)
    print(f"== exit statuses {statuses}: the suite's is {status}")
    print(total(tallies), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
