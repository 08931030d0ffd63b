"""The load: wrk runs driven by a lua script that prints a ``BENCH_JSON`` summary, in rounds.

Both scripts under bench/lua/ end with a ``done()`` that prints one line ``BENCH_JSON {...}``:
requests, duration_us, the error counts, latency percentiles in microseconds (and whatever else
the script adds). ``run_wrk`` returns that dict plus wrk's own CPU seconds; ``interleaved`` gives
the order in which several servers are loaded round after round.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.harness.machine import ensure_tool

LUA_DIR = Path(__file__).resolve().parent.parent / "lua"
T = TypeVar("T")


def ensure_wrk() -> str:
    """wrk's path (installed with apt-get when root; otherwise exits saying how to install it)."""
    return ensure_tool("wrk", "wrk")


@dataclass
class WrkRun:
    """One wrk run: the script's BENCH_JSON summary (or wrk's text summary) and wrk's CPU."""

    summary: dict
    cpu_seconds: float  # wrk's own user + system time
    text: str

    @property
    def seconds(self) -> float:
        """Wall seconds wrk measured over."""
        return self.summary["duration_us"] / 1e6

    @property
    def rps(self) -> float:
        """Responses per second (any status)."""
        return self.summary["requests"] / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        """Non-2xx responses plus socket errors (connect, read, write, timeout)."""
        return sum(self.summary["errors"].values())


def run_wrk(
    url: str,
    seconds: float,
    *,
    script: Path | None = None,
    env: dict | None = None,
    threads: int = 2,
    connections: int = 32,
    timeout: float = 5,
    headers: Sequence[str] = (),
    out_path: Path | None = None,
) -> WrkRun:
    """Run wrk against ``url`` for ``seconds``; ``env`` adds the script's BENCH_... settings.

    With a script its BENCH_JSON line is the summary; without one, wrk's text summary is parsed
    (requests/s, non-2xx, socket errors). ``out_path`` keeps wrk's output.
    """
    argv = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        f"{timeout:g}s",
    ]
    for header in headers:
        argv += ["-H", header]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    with open(out_path, "w+b") if out_path else tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            argv, env=dict(os.environ, **(env or {})), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            # wait4 gives wrk's own CPU time (user + system) once it exits.
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    summary = parse_bench_json(text) if script is not None else parse_text_summary(text)
    return WrkRun(summary, usage.ru_utime + usage.ru_stime, text)


def parse_bench_json(text: str) -> dict:
    """The ``BENCH_JSON {...}`` line a bench/lua script's done() printed."""
    match = re.search(r"^BENCH_JSON (\{.*\})$", text, re.M)
    if not match:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{text[-3000:]}")
    return json.loads(match.group(1))


def parse_text_summary(text: str) -> dict:
    """wrk's own summary: requests/s, non-2xx responses and socket errors."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not rate:
        raise RuntimeError(f"wrk printed no summary:\n{text[-3000:]}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    counts = [int(x) for x in errors.groups()] if errors else [0, 0, 0, 0]
    return {
        "rps": float(rate.group(1)),
        "errors": dict(zip(("connect", "read", "write", "timeout"), counts, strict=True))
        | {"status": int(non2xx.group(1)) if non2xx else 0},
    }


def interleaved(keys: Sequence[T], rounds: int) -> Iterator[tuple[int, T]]:
    """``(round, key)`` for every key in every round, the order rotated by one each round.

    Loading several servers in turn, each round starting with a different one, lets a change in
    the machine's background load fall on all of them alike.
    """
    order = list(keys)
    for round_no in range(rounds):
        shift = round_no % len(order) if order else 0
        for key in order[shift:] + order[:shift]:
            yield round_no, key
