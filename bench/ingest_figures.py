"""What the ingest benchmark measures: wrk rounds, a worker count's load result, drains."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from bench.harness.machine import CORES

BATCH = 20  # events per request, as the issue asks
DEFAULT_WORKERS = CORES * 2  # webapp/gunicorn.conf.py: two sync workers per core


@dataclass
class Round:
    """One wrk run against one gunicorn."""

    run_id: str
    duration_s: float
    requests: int
    ok: int
    issued: int
    errors: dict
    latency_us: dict
    other_cores: float  # cores used by processes outside the benchmark during the round
    stored_entries: int = 0  # this round's entries found in the stream
    stored_events: int = 0


@dataclass
class LoadResult:
    """Everything measured for one gunicorn worker count, over all its rounds."""

    workers: int
    stream_key: str
    code: str = "current"  # "baseline": the --baseline commit's code
    rounds: list[Round] = field(default_factory=list)
    cpu_seconds: dict = field(default_factory=lambda: Counter())  # name -> CPU seconds
    sys_seconds: dict = field(default_factory=lambda: Counter())  # name -> kernel CPU seconds
    busy_jiffies: int = 0
    total_jiffies: int = 0
    stream_entries: int = 0  # whole stream (warm-up included)
    stream_events: int = 0
    distinct_ids: int = 0
    rejected: int = 0

    @property
    def duration_s(self) -> float:
        return sum(r.duration_s for r in self.rounds)

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.rounds)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def errors(self) -> Counter:
        total: Counter = Counter()
        for r in self.rounds:
            total.update(r.errors)
        return total

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def accepted_eps(self) -> float:
        return self.ok * BATCH / self.duration_s if self.duration_s else 0.0

    @property
    def round_eps(self) -> list[float]:
        return [r.ok * BATCH / r.duration_s for r in self.rounds]

    @property
    def events_per_cpu_second(self) -> float:
        """Accepted events per second of gunicorn CPU: the collector's efficiency."""
        cpu = self.cpu_seconds["gunicorn"]
        return self.ok * BATCH / cpu if cpu else 0.0

    def quiet_rounds(self, max_other: float) -> list[Round]:
        """Rounds during which other processes used at most ``max_other`` cores."""
        return [r for r in self.rounds if r.other_cores <= max_other]

    def quiet_eps(self, max_other: float) -> float | None:
        rounds = self.quiet_rounds(max_other)
        seconds = sum(r.duration_s for r in rounds)
        return sum(r.ok for r in rounds) * BATCH / seconds if seconds else None

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.latency_us["p50"] for r in self.rounds) / 1000

    @property
    def p99_ms(self) -> float:
        return max(r.latency_us["p99"] for r in self.rounds) / 1000

    @property
    def cpu(self) -> dict:
        """Cores used by each party: CPU seconds over wall seconds of load."""
        wall = self.duration_s or 1.0
        cores = {name: self.cpu_seconds[name] / wall for name in ("gunicorn", "redis", "wrk")}
        ours = sum(cores.values())
        cores["other"] = max(0.0, self.machine_busy * CORES - ours)
        return cores

    @property
    def machine_busy(self) -> float:
        return self.busy_jiffies / self.total_jiffies if self.total_jiffies else 0.0

    @property
    def acknowledged_events(self) -> int:
        return self.ok * BATCH

    @property
    def run_events(self) -> int:
        return sum(r.stored_events for r in self.rounds)

    @property
    def lost(self) -> int:
        """Acknowledged events missing from the stream, round by round."""
        return sum(max(0, r.ok * BATCH - r.stored_events) for r in self.rounds)

    @property
    def in_flight(self) -> int:
        return sum(r.issued - r.requests for r in self.rounds)

    @property
    def ok_loss(self) -> bool:
        return (
            self.lost == 0
            and all(r.stored_entries <= r.issued for r in self.rounds)
            and self.distinct_ids == self.stream_events
            and self.rejected == 0
        )


@dataclass
class DrainResult:
    """One drain: how many events which store took, how fast, and whether all arrived once."""

    store: str
    workers: int
    events: int = 0
    seconds: float = 0.0
    rows: int = 0
    distinct: int = 0
    ok: bool = False
    note: str = ""
    cpu_seconds: float = 0.0  # CPU used by the ingest worker processes

    @property
    def busy(self) -> float:
        """Share of the drain's wall time the ingest workers spent on CPU (not waiting)."""
        return self.cpu_seconds / (self.seconds * self.workers) if self.seconds else 0.0

    @property
    def eps(self) -> float:
        # A drain cut short (timed out) is rated by the rows it stored meanwhile.
        done = self.rows if self.note else self.events
        return done / self.seconds if self.seconds else 0.0
