"""bench/RESULTS.md: one benchmark's section, its standard header, the same-run comparison table."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.harness.machine import machine_info, machine_line

RESULTS = Path(__file__).resolve().parent.parent / "RESULTS.md"


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section starting at ``heading`` (up to the next ``## `` heading), or append."""
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        new_lines = lines[:start] + section.rstrip("\n").splitlines() + [""] + lines[end:]
        new = "\n".join(new_lines).rstrip("\n") + "\n"
    path.write_text(new)


def command_line(script: str, argv: Sequence[str] | None = None) -> str:
    """How the run was started, as a reader would type it: ``python bench/x.py --opt value``."""
    shown = ["python", script, *(sys.argv[1:] if argv is None else argv)]
    return " ".join(shlex.quote(x) for x in shown)


def header(
    heading: str, command: str, run_time: str, machine: str | None = None, date: str | None = None
) -> list[str]:
    """The lines every section opens with: heading, Machine, Date (whole run ...), Command."""
    return [
        heading,
        "",
        f"- Machine: {machine or machine_line()}",
        f"- Date: {date or machine_info()['date']} (whole run {run_time})",
        f"- Command: `{command}`",
    ]


@dataclass
class Compared:
    """One configuration measured on both code trees in the same run, round by round."""

    name: str  # the configuration: "4" (workers), "sync:4"
    current: float  # the rate over all rounds, current code
    baseline: float
    current_rounds: list[float]  # the rate of each round
    baseline_rounds: list[float]
    current_p99_ms: float
    baseline_p99_ms: float
    extra: tuple[object, object] = ("", "")  # the last column: current, baseline


def comparison_intro(current: str, baseline: str, what: str) -> list[str]:
    """The paragraph above the comparison table: which code is compared, and how."""
    return [
        f"Current code: {current}; baseline: {baseline}, its own webapp/gunicorn.conf.py and "
        f"code, on the same {what}. Each round loads every server once, in rotating order, so the "
        "machine's background load falls on both alike.",
        "",
    ]


def comparison_table(key: str, unit: str, rows: list[Compared], extra: str) -> list[str]:
    """``| key | current unit | baseline unit | current / baseline | per round | p99 | extra |``."""
    out = [
        f"| {key} | current {unit} | baseline {unit} | current / baseline | "
        f"per round (current / baseline) | p99 ms current / baseline | {extra} |",
        "|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        ratio = row.current / row.baseline if row.baseline else 0.0
        per_round = " / ".join(
            f"{c / b:.3f}" if b else "-"
            for c, b in zip(row.current_rounds, row.baseline_rounds, strict=True)
        )
        out.append(
            f"| {row.name} | {row.current:,.0f} | {row.baseline:,.0f} | **{ratio:.3f}** | "
            f"{per_round} | {row.current_p99_ms:.1f} / {row.baseline_p99_ms:.1f} | "
            f"{row.extra[0]} / {row.extra[1]} |"
        )
    out.append("")
    return out
