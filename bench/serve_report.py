"""The serving benchmark's RESULTS.md section."""

from __future__ import annotations

from bench.harness.results import Compared, comparison_intro, comparison_table, header
from tracking.text import plural

HEADING = "## Serving (bench/serve.py)"


def ms(value: float | None) -> str:
    """Milliseconds as the report shows them ("-" when nothing was measured)."""
    return "-" if value is None else f"{value:.0f} ms"


def render(report: dict) -> str:
    """The whole ``## Serving (bench/serve.py)`` section of a finished run."""
    a, d = report["args"], report["data"]
    lines = [
        *header(HEADING, report["command"], f"{report['minutes']:.1f} minutes"),
        f"- Data: generated shop, {d['customers']:,} customers in the model, {d['items']:,} items, "
        f"{d['events']:,} events stored through the real write path; answers precomputed for "
        f"{d['cached']:,} customers (80%) as `train` does after promotion.",
        f"- Load: wrk, {a['threads']} threads, {a['connections']} connections, loopback, "
        f"{a['warmup']:g} s of warm-up, then {a['rounds']} rounds of {a['seconds']:g} s per route, "
        "bare and recommendations alternating; browser-style calls (`write_key` + `Origin`), "
        "`n=10`. Mix: 80% requests for cached customers (uniform over all of them), 20% "
        "never-seen visitors (a fresh anonymous id each time: a miss in both caches, one MGET, "
        "trending). The "
        "bare route `GET /bench/bare` returns a captured recommendation response (same bytes) "
        "from the same gunicorn processes.",
        "",
        "| gunicorn | bare req/s | bare p50 / p99 ms | recommendations req/s | p50 / p99 ms "
        "| throughput vs bare | p99 vs bare | errors | cache mix (sampled) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for config, r in report["configs"].items():
        b, s = r["bare"], r["recs"]
        mix = ", ".join(
            f"{k} {v / sum(r['mix'].values()):.0%}" for k, v in sorted(r["mix"].items())
        )
        mark = " (chosen)" if config == report["best"] else ""
        lines.append(
            f"| {config}{mark} | {b['rps']:,.0f} | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} "
            f"| {s['rps']:,.0f} | {s['p50_ms']:.1f} / {s['p99_ms']:.1f} | {r['ratio']:.0%} "
            f"| {r['p99_ratio']:.2f}x | {b['errors'] + s['errors']} | {mix} |"
        )
    lines += [
        "",
        "CPU per request (microseconds; gunicorn master + workers, the Redis server, wrk), "
        "mean over the rounds:",
        "",
        "| gunicorn | route | gunicorn | Redis | wrk | total |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for config, r in report["configs"].items():
        for route in ("bare", "recs"):
            cpu = r[route]["cpu_us"]
            lines.append(
                f"| {config} | {'bare' if route == 'bare' else 'recommendations'} "
                f"| {cpu['gunicorn']:.0f} | {cpu['redis']:.0f} | {cpu['wrk']:.0f} "
                f"| {sum(cpu.values()):.0f} |"
            )
    best = report["configs"][report["best"]]
    f, sw = report["freshness_idle"], report["swap"]
    load = sw["load"]
    ratio_swap = load["rps"] / sw["bare_after"]["rps"]
    fs = sw["freshness"]
    if report.get("baseline"):
        lines += ["", *baseline_section(report)]
    lines += [
        "",
        f"Chosen: **{report['best']}** (the highest recommendation throughput among "
        "configurations whose p99 stays within 2x of the bare route's).",
        "",
        "### Freshness (event 2xx -> changed answer)",
        "",
        f"- Idle: {f['changed']} of {f['trials']} trials changed; median "
        f"**{ms(f['median_ms'])}**, p99 **{ms(f['p99_ms'])}**, max {ms(f['max_ms'])}; "
        f"{f['unchanged_after_5s']} unchanged after 5 s; {f['http_errors']} HTTP errors.",
        f"- Under full load during model swaps: {fs.get('changed', 0)} of {fs.get('trials', 0)} "
        f"trials; median {fs.get('median_ms') or 0:.0f} ms, p99 {fs.get('p99_ms') or 0:.0f} ms; "
        f"{fs.get('unchanged_after_5s', 0)} unchanged after 5 s; {fs.get('http_errors', 0)} HTTP "
        "errors.",
        "",
        "### During model swaps",
        "",
        f"- {plural(sw['swaps'], 'new version')} promoted in {a['swap_seconds']:g} s (one every "
        f"{a['swap_every']:g} s; as `train` does, each warmed into the cache first, within "
        f"{a['swap_every'] / 2:g} s: {', '.join(f'{w:,}' for w in sw['warmed'])} customers) "
        f"while wrk ran the same mix: {load['rps']:,.0f} req/s "
        f"({ratio_swap:.0%} of the bare route measured right after), p50 "
        f"{load['latency_us']['p50'] / 1000:.1f} ms, p99 {load['latency_us']['p99'] / 1000:.1f} "
        f"ms, **{load['error_count']} errors** out of {load['requests']:,} requests.",
        "",
        "### Targets",
        "",
        f"- Cached throughput >= 80% of the bare route: {best['ratio']:.0%} "
        f"({'met' if best['ratio'] >= 0.8 else 'MISSED'}).",
        f"- p99 <= 2x the bare route's p99: {best['p99_ratio']:.2f}x "
        f"({'met' if best['p99_ratio'] <= 2 else 'MISSED'}).",
        f"- Freshness p99 < 1 s: {ms(f['p99_ms'])} idle "
        f"({'met' if (f['p99_ms'] or 1e9) < 1000 else 'MISSED'}); "
        f"{fs.get('p99_ms') or 0:.0f} ms under load during swaps.",
        f"- Zero errors: {best['bare']['errors'] + best['recs']['errors']} in the comparison, "
        f"{load['error_count']} during swaps, {f['http_errors'] + fs.get('http_errors', 0)} in "
        "the freshness trials.",
    ]
    return "\n".join(lines) + "\n"


def baseline_section(report: dict) -> list[str]:
    """The same load against the --baseline commit's servers, interleaved: the ratio per round."""
    base = report["baseline"]
    out = ["### Against the baseline commit (same run)", ""]
    out += comparison_intro(
        base["current"], base["label"], f"Redis, store and cache ({base['model']})"
    )
    rows = {"recs": [], "bare": []}
    for config, r in report["configs"].items():
        b = base["configs"][config]
        for route in rows:
            cur_rounds = r["round_rps"][route]
            base_rounds = b["round_rps"][route]
            rows[route].append(
                Compared(
                    config,
                    r[route]["rps"],
                    b[route]["rps"],
                    cur_rounds,
                    base_rounds,
                    r[route]["p99_ms"],
                    b[route]["p99_ms"],
                    (r[route]["errors"], b[route]["errors"]),
                )
            )
    out += ["Recommendations (the same mix as above):", ""]
    out += comparison_table("gunicorn", "req/s", rows["recs"], "errors")
    out += ["The bare route (the framework's ceiling, each tree's own `bench/serve_wsgi.py`):", ""]
    out += comparison_table("gunicorn", "req/s", rows["bare"], "errors")
    return out
