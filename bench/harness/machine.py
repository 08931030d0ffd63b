"""The machine a benchmark runs on: CPU model, process CPU accounting, waiting for quiet, tools."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def log(message: str) -> None:
    """Print one timestamped progress line (flushed, so logs of background runs stay current)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- what the machine is ---------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown CPU" when it says none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def memory_gb() -> float | None:
    """Total RAM in GB (None when /proc/meminfo is unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """cpu, cores, python, kernel and the date (UTC): the facts every RESULTS.md section states."""
    return {
        "cpu": cpu_model(),
        "cores": CORES,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "kernel": platform.release(),
    }


def machine_line(memory: bool = False) -> str:
    """ "<cpu>, N cores[, M GB RAM], Linux <kernel>, Python <version>": the Machine header line."""
    m = machine_info()
    ram = memory_gb() if memory else None
    return (
        f"{m['cpu']}, {m['cores']} cores{f', {ram:.0f} GB RAM' if ram else ''}, "
        f"{platform.system()} {m['kernel']}, Python {m['python']}"
    )


# -- CPU accounting ------------------------------------------------------------------------------


def proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process ((0, 0) when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0, 0.0


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    return sum(proc_times(pid))


def group_times(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of these processes, summed (those that still exist)."""
    times = [proc_times(p) for p in pids]
    return sum(t[0] for t in times), sum(t[1] for t in times)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, summed (those that still exist)."""
    return sum(group_times(pids))


def children_of(pid: int) -> list[int]:
    """The direct children of a process (gunicorn's workers, say)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def system_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


class CpuWatch:
    """CPU used by named groups of processes and by the whole machine over a ``with`` block."""

    def __init__(self, groups: dict[str, list[int]]):
        self.groups = groups
        self.user: dict[str, float] = {}
        self.system: dict[str, float] = {}
        self.busy_jiffies = self.total_jiffies = 0

    def __enter__(self) -> CpuWatch:
        self._before = {name: group_times(pids) for name, pids in self.groups.items()}
        self._machine = system_cpu()
        return self

    def __exit__(self, *exc) -> None:
        machine = system_cpu()
        for name, pids in self.groups.items():
            user, system = group_times(pids)
            self.user[name] = user - self._before[name][0]
            self.system[name] = system - self._before[name][1]
        self.busy_jiffies = machine[0] - self._machine[0]
        self.total_jiffies = machine[1] - self._machine[1]

    def seconds(self, name: str) -> float:
        """CPU seconds (user + system) the group used during the block."""
        return self.user[name] + self.system[name]

    @property
    def busy(self) -> float:
        """Share of the machine's CPU time that was busy during the block."""
        return self.busy_jiffies / max(1, self.total_jiffies)

    def other_cores(self, own_seconds: float, wall: float) -> float:
        """Cores used by processes outside the benchmark: the machine's busy cores less ours."""
        return max(0.0, self.busy * CORES - own_seconds / wall) if wall > 0 else 0.0


@dataclass
class Quiet:
    """What waiting for an idle machine found."""

    other_cores: float  # cores busy in the last sample
    waited_s: float
    quiet: bool


def wait_for_quiet(budget: float, max_cores: float, sample: float = 0.5) -> Quiet:
    """Wait (``budget`` seconds at most) until the machine's busy cores drop to ``max_cores``.

    The benchmark itself is idle while it waits, so what is busy is other processes.
    """
    started = time.monotonic()
    while True:
        b0 = system_cpu()
        time.sleep(sample)
        b1 = system_cpu()
        other = (b1[0] - b0[0]) / max(1, b1[1] - b0[1]) * CORES
        waited = time.monotonic() - started
        if other <= max_cores or waited >= budget:
            return Quiet(other, waited, other <= max_cores)


def prioritise(pid: int, nice: int) -> bool:
    """Set a process's nice value and its autogroup's (False when not allowed: not root).

    CFS shares CPU between sessions first, so a process's own nice only counts inside its
    session's autogroup.
    """
    if not nice:
        return True
    try:
        os.setpriority(os.PRIO_PROCESS, pid, nice)
    except (PermissionError, ProcessLookupError):
        return False
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass  # no autogroup scheduling on this kernel: the process nice is what counts
    return True


# -- tools ---------------------------------------------------------------------------------------


def ensure_tool(binary: str, package: str, required: bool = True) -> str | None:
    """The path of a command-line tool, apt-get installing ``package`` when root and missing.

    Exits with the install command when ``required`` and still missing; else returns None.
    """
    path = shutil.which(binary)
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"{binary} is missing: installing it with apt-get install -y {package}")
        quiet = {"check": False, "stdout": subprocess.DEVNULL}
        subprocess.run(["apt-get", "install", "-y", package], **quiet)
        path = shutil.which(binary)
        if not path:
            subprocess.run(["apt-get", "update"], **quiet)
            subprocess.run(["apt-get", "install", "-y", package], **quiet)
            path = shutil.which(binary)
    if not path and required:
        sys.exit(
            f"{binary} is required: install it with `sudo apt-get install -y {package}` "
            "(Debian/Ubuntu)"
        )
    return path


def find_py_spy(given: str | None = None, candidates: tuple[str, ...] = ()) -> str | None:
    """py-spy: the path given, else on PATH, next to this Python, or one of ``candidates``."""
    if given:
        return given if Path(given).exists() or shutil.which(given) else None
    found = shutil.which("py-spy")
    if found:
        return found
    beside = Path(sys.executable).parent / "py-spy"
    places = (str(beside), *candidates)
    return next((c for c in places if Path(c).exists()), None)
