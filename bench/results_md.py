"""Shared by the benchmarks: replace one benchmark's section of bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path


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
