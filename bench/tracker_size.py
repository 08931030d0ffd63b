"""Size of the browser tracker, static/ecrm.js, against its budget of 5.2 KB gzipped.

There is no build step: the file served is the source, so the figure that matters is the
source gzipped (-9). When npx is available, terser's minified output is measured too, to show
what a build would save (npx fetches terser from the npm registry the first time).

    python bench/tracker_size.py            # print and write bench/RESULTS.md
    python bench/tracker_size.py --no-write # print only
    python bench/tracker_size.py --no-terser

Writes the section "## Tracker size (bench/tracker_size.py)" of bench/RESULTS.md (other sections
are kept). Exits 1 when the served file is over budget.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from bench.harness.results import RESULTS, command_line, header, write_section  # noqa: E402

TRACKER = PROJECT_ROOT / "static" / "ecrm.js"
SECTION = "## Tracker size (bench/tracker_size.py)"
BUDGET = int(5.2 * 1024)  # bytes, gzipped (5 KB, +0.2 for identity verification and opt-out)
TERSER = "terser@5.51.2"
TERSER_ARGS = ["--compress", "passes=2", "--mangle", "--comments", "/^!/"]


def gzipped(data: bytes) -> int:
    """Bytes after gzip -9 (no name, no timestamp: the same input always gives the same size)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def minified(path: Path) -> tuple[bytes | None, str]:
    """terser's output for ``path`` and how it was made, or (None, why not)."""
    npx = shutil.which("npx")
    if npx is None:
        return None, "npx not found (install Node.js and npm to measure a minified build)"
    command = [npx, "--yes", TERSER, str(path), *TERSER_ARGS]
    try:
        done = subprocess.run(command, capture_output=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return None, f"{TERSER} did not finish in 300 s (is the npm registry reachable?)"
    if done.returncode != 0 or not done.stdout:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return None, f"{TERSER} failed: {reason[0]}"
    return done.stdout, f"npx {TERSER} static/ecrm.js {' '.join(TERSER_ARGS)}"


def report(raw: bytes, mini: bytes | None, how: str, command: str, seconds: float) -> str:
    """The RESULTS.md section."""
    served = gzipped(raw)
    lines = [
        *header(SECTION, command, f"{seconds:.0f} s"),
        "",
        f"Budget: {BUDGET} bytes gzipped. No build step: the file served is the source.",
        "",
        "| file | raw bytes | gzip -9 bytes | budget |",
        "|---|---|---|---|",
        f"| static/ecrm.js (served) | {len(raw)} | {served} | "
        f"{'within' if served <= BUDGET else 'OVER'} ({BUDGET - served:+d}) |",
    ]
    if mini is not None:
        small = gzipped(mini)
        lines.append(
            f"| terser output (not served) | {len(mini)} | {small} | "
            f"{'within' if small <= BUDGET else 'OVER'} ({BUDGET - small:+d}) |"
        )
        lines += ["", f"Minified with `{how}`."]
    else:
        lines += ["", f"Minified size not measured: {how}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and write the section (unless --no-write); 1 when over budget."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-write", "--no-results", action="store_true", help="do not update RESULTS.md"
    )
    parser.add_argument("--no-terser", action="store_true", help="skip the minified build")
    args = parser.parse_args(argv)

    started = time.monotonic()
    raw = TRACKER.read_bytes()
    mini, how = (None, "skipped (--no-terser)") if args.no_terser else minified(TRACKER)
    print(f"static/ecrm.js           raw {len(raw):6d} B   gzip -9 {gzipped(raw):5d} B (served)")
    if mini is not None:
        print(f"terser (not served)      raw {len(mini):6d} B   gzip -9 {gzipped(mini):5d} B")
    else:
        print(f"minified: {how}")
    print(f"budget                                 {BUDGET:5d} B gzipped")
    if not args.no_write:
        command = command_line("bench/tracker_size.py", argv)
        section = report(raw, mini, how, command, time.monotonic() - started)
        write_section(RESULTS, SECTION, section)
        print(f"wrote the '{SECTION}' section of {RESULTS.relative_to(PROJECT_ROOT)}")
    return 0 if gzipped(raw) <= BUDGET else 1


if __name__ == "__main__":
    sys.exit(main())
