"""Customer value models against the published CDNOW estimates, and the fit's speed at 1M customers.

    python bench/value.py                 # CDNOW table, 39-week holdout, 1M-customer BG/NBD fit
    python bench/value.py --customers 200000 --no-results
    python bench/value.py --refresh       # also the refresh: 1M customers, 5M orders (PostgreSQL)

1. analytics.clv fits BG/NBD and Gamma-Gamma to the CDNOW summary (2,357 customers of a real CD
   shop, 1997-98, the files inside the `lifetimes` package) and prints the parameters beside the
   published ones (Fader, Hardie & Lee 2005; Gamma-Gamma: Fader & Hardie 2013) and beside
   `lifetimes`' own fit of the same data in the same run. Target: every parameter within 0.5%.
2. From the raw CDNOW_sample transactions: the 39-week calibration summary (rebuilt by
   analytics.clv.summarise and checked against the published summary), then the 39-week holdout:
   predicted against actual repeat transactions, in total and per calibration frequency class,
   by our fit and by `lifetimes`' fit.
3. The BG/NBD fit alone on N simulated customers (default 1M) drawn from the BG/NBD process with
   the CDNOW parameters (target under 10 s), with the parameters it recovers.
4. With --refresh: analytics.value.refresh end to end on a generated PostgreSQL store of 1M
   customers and 5M orders (target under 60 s, peak memory under 2 GB), in a child process whose
   peak resident memory is read from the kernel.
`lifetimes` is a benchmark-only dependency: analytics/ never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analytics import clv  # noqa: E402
from bench.harness.machine import log, machine_info, machine_line  # noqa: E402
from bench.harness.results import RESULTS, command_line, write_section  # noqa: E402

HEADING = "## Customer value (bench/value.py)"
PUBLISHED_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LL = -9582.4
PUBLISHED_GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}
TOLERANCE = 0.005  # 0.5%
FIT_TARGET_S = 10.0
CALIBRATION_END = pd.Timestamp("1997-09-30")  # 39 weeks after 1997-01-01, as in the paper
HOLDOUT_END = pd.Timestamp("1998-06-30")  # the next 39 weeks
EPOCH = pd.Timestamp("1997-01-01")


def cdnow_dir() -> Path:
    try:
        import lifetimes
    except ImportError:
        sys.exit("bench/value.py needs the benchmark dependencies: pip install -r requirements.txt")
    return Path(os.path.dirname(lifetimes.__file__)) / "datasets"


def published_table(data: Path, out: list[str]) -> bool:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    summary = pd.read_csv(data / "cdnow_customers_summary_with_transactions.csv")
    x, t_x, T, zbar = summary.x.values, summary.t_x.values, summary["T"].values, summary.zbar.values
    started = time.perf_counter()
    ours = clv.fit_bgnbd(x, t_x, T)
    ours_gg = clv.fit_gamma_gamma(x, zbar)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = BetaGeoFitter().fit(x, t_x, T)
    repeat = x > 0
    theirs_gg = GammaGammaFitter().fit(x[repeat], zbar[repeat])
    theirs_s = time.perf_counter() - started
    theirs_ll = float(clv.bgnbd_log_likelihood(*theirs.params_.values, x, t_x, T).sum())

    out += [
        f"CDNOW summary: {len(x):,} customers ({int(repeat.sum()):,} with repeat purchases), time "
        "in weeks (`cdnow_customers_summary_with_transactions.csv` from the `lifetimes` package). "
        f"Both fits in this run: ours {ours_s:.2f} s, `lifetimes` 0.11.3 {theirs_s:.2f} s.",
        "",
        "| model | parameter | published | ours | ours vs published | `lifetimes` |",
        "|---|---|---:|---:|---:|---:|",
    ]
    ok = True
    rows = [
        ("BG/NBD", name, PUBLISHED_BGNBD[name], getattr(ours, name), theirs.params_[name])
        for name in ("r", "alpha", "a", "b")
    ]
    rows += [
        ("Gamma-Gamma", name, PUBLISHED_GG[name], getattr(ours_gg, name), theirs_gg.params_[key])
        for name, key in (("p", "p"), ("q", "q"), ("gamma", "v"))
    ]
    for model, name, published, mine, other in rows:
        off = mine / published - 1
        ok &= abs(off) <= TOLERANCE
        out.append(
            f"| {model} | {name} | {published} | {mine:.4f} | {off:+.2%} | {float(other):.4f} |"
        )
    ll_off = ours.log_likelihood / PUBLISHED_LL - 1
    out.append(
        f"| BG/NBD | log-likelihood | {PUBLISHED_LL} | {ours.log_likelihood:.1f} | "
        f"{ll_off:+.3%} | {theirs_ll:.1f} |"
    )
    ok &= abs(ll_off) <= TOLERANCE
    out += [
        "",
        f"Every parameter within 0.5% of the published value: {'yes' if ok else '**no**'}. "
        "(The published values are rounded to their last digit, so 0.05% is as close as the "
        "comparison can tell.)",
        "",
    ]
    return ok


def read_sample(data: Path) -> pd.DataFrame:
    sample = pd.read_csv(
        data / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer", "date", "cds", "amount"],
        dtype={"date": str},
    )
    sample["day"] = (pd.to_datetime(sample.date, format="%Y%m%d") - EPOCH).dt.days
    return sample


def holdout_table(data: Path, out: list[str]) -> None:
    from lifetimes import BetaGeoFitter

    sample = read_sample(data)
    end = int((CALIBRATION_END - EPOCH).days)
    summary = clv.summarise(
        sample.customer.values, sample.day.values, sample.amount.values, end_day=end
    )
    published = pd.read_csv(data / "cdnow_customers_summary_with_transactions.csv")
    same_ids = np.array_equal(summary.customer_ids, published.ID.values)
    worst = max(
        float(np.abs(summary.frequency - published.x.values).max()),
        float(np.abs(summary.recency - published.t_x.values).max()),
        float(np.abs(summary.T - published["T"].values).max()),
    )
    # Holdout: transaction days per customer after the calibration end, up to 39 weeks later.
    later = sample[(sample.day > end) & (sample.day <= (HOLDOUT_END - EPOCH).days)]
    actual_by_id = later.groupby("customer").day.nunique()
    actual = actual_by_id.reindex(summary.customer_ids, fill_value=0).values.astype(float)
    horizon = (HOLDOUT_END - CALIBRATION_END).days / 7

    ours = clv.fit_bgnbd(summary.frequency, summary.recency, summary.T)
    predicted = clv.expected_purchases(ours, horizon, summary.frequency, summary.recency, summary.T)
    theirs = BetaGeoFitter().fit(summary.frequency, summary.recency, summary.T)
    predicted_l = np.asarray(
        theirs.conditional_expected_number_of_purchases_up_to_time(
            horizon, summary.frequency, summary.recency, summary.T
        )
    )

    out += [
        f"From the raw `CDNOW_sample.txt` ({len(sample):,} purchases): the calibration summary to "
        f"{CALIBRATION_END.date()} rebuilt by `analytics.clv.summarise` "
        f"({'the same customers' if same_ids else '**different customers**'} as the published "
        f"summary, largest difference {worst:.4f} weeks: its rounding to 2 decimals). Holdout "
        f"{(CALIBRATION_END + pd.Timedelta(days=1)).date()} to {HOLDOUT_END.date()} "
        f"({horizon:.1f} weeks): repeat transactions (distinct purchase days) predicted by each "
        "fit from the calibration data, against what the customers did.",
        "",
        "| calibration repeat purchases | customers | actual | ours | `lifetimes` |",
        "|---|---:|---:|---:|---:|",
    ]
    classes = np.minimum(summary.frequency, 7).astype(int)
    for k in range(8):
        mask = classes == k
        label = f"{k}+" if k == 7 else str(k)
        out.append(
            f"| {label} | {int(mask.sum()):,} | {actual[mask].sum():,.0f} | "
            f"{predicted[mask].sum():,.1f} | {predicted_l[mask].sum():,.1f} |"
        )
    out.append(
        f"| **all** | {len(actual):,} | {actual.sum():,.0f} | {predicted.sum():,.1f} "
        f"({predicted.sum() / actual.sum() - 1:+.1%}) | {predicted_l.sum():,.1f} |"
    )
    out.append("")


def simulate(n: int, rng: np.random.Generator, weeks: float = 78.0):
    """Customers from the BG/NBD process with the CDNOW parameters, observed for 0..``weeks``."""
    p = PUBLISHED_BGNBD
    lam = rng.gamma(p["r"], 1 / p["alpha"], n)
    drop = rng.beta(p["a"], p["b"], n)
    T = rng.integers(1, int(weeks * 7) + 1, n) / 7  # first purchase on a whole day
    x, t_x, now = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1 / lam[idx])
        bought = now[idx] <= T[idx]
        got = idx[bought]
        x[got] += 1
        t_x[got] = np.floor(now[got] * 7) / 7  # purchase days are whole days
        active[idx[~bought]] = False
        active[got[rng.random(len(got)) < drop[got]]] = False
    return x, t_x, T


def fit_speed(n: int, out: list[str]) -> bool:
    rng = np.random.default_rng(20261204)
    started = time.perf_counter()
    x, t_x, T = simulate(n, rng)
    made = time.perf_counter() - started
    started = time.perf_counter()
    fitted = clv.fit_bgnbd(x, t_x, T)
    seconds = time.perf_counter() - started
    ok = seconds < FIT_TARGET_S
    out += [
        f"BG/NBD fit alone on {n:,} simulated customers (drawn from the BG/NBD process with the "
        f"published CDNOW parameters, observed 1 day to 78 weeks, purchases on whole days; "
        f"{int((x > 0).sum()):,} with repeat purchases; simulated in {made:.1f} s): "
        f"**{seconds:.2f} s** ({fitted.iterations} iterations; target under {FIT_TARGET_S:.0f} s: "
        f"{'met' if ok else '**missed**'}). Parameters recovered: "
        + ", ".join(
            f"{name} {getattr(fitted, name):.3f} (true {PUBLISHED_BGNBD[name]})"
            for name in ("r", "alpha", "a", "b")
        )
        + ".",
        "",
    ]
    return ok


DEFAULT_PG = os.environ.get("ECRM_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REFRESH_TARGET_S = 60.0
REFRESH_TARGET_GB = 2.0


def _bench_database(server_url: str, name: str) -> str:
    import sqlalchemy as sa

    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + "/" + name


def _generate_orders(db_url: str, customers: int, orders_wanted: int, rng) -> tuple[int, int]:
    """A store with one site whose buyers follow BG/NBD, about ``orders_wanted`` orders, COPYed."""
    from bench.harness.service import create_store
    from tracking.db import make_engine

    site, _ = create_store(db_url, "value bench", ["http://localhost"])
    # Rates chosen so that customers x (1 + repeats) is near the wanted number of orders.
    lam = rng.gamma(1.0, 1 / 6.0, customers)
    drop = rng.beta(1.0, 6.0, customers)
    first = rng.integers(0, 730, customers)  # first orders over two years
    end = 730
    counts = np.ones(customers, dtype=np.int64)
    days: list[np.ndarray] = [first.astype(np.float64)]
    who: list[np.ndarray] = [np.arange(customers)]
    now = first.astype(np.float64)
    active = np.ones(customers, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(7 / lam[idx])  # rates per week, times in days
        bought = now[idx] <= end
        got = idx[bought]
        counts[got] += 1
        days.append(now[got].copy())
        who.append(got)
        active[idx[~bought]] = False
        active[got[rng.random(len(got)) < drop[got]]] = False
    day = np.concatenate(days)
    customer = np.concatenate(who)
    amount = np.round(rng.gamma(4.0, 12.0, len(day)), 2)
    start = np.datetime64("2025-01-01T00:00:00")
    stamps = (start + (day * 86400).astype("timedelta64[s]")).astype(str)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(
            "COPY orders (site_id, order_id, user_id, message_id, total, revenue, currency, "
            "ordered_at, holdout) FROM STDIN"
        ) as copy:
            for i in range(len(day)):
                user = f"c{customer[i]:07d}"
                copy.write_row(
                    (
                        site.site_id,
                        f"o{i}",
                        user,
                        f"m{i}",
                        amount[i],
                        amount[i],
                        "EUR",
                        stamps[i] + "+00:00",
                        False,
                    )
                )
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE orders")
    engine.dispose()
    return site.site_id, len(day)


def _refresh_child(db_url: str, site_id: int, day: str, out) -> None:
    import resource

    from analytics import value
    from tracking.db import make_engine

    engine = make_engine(db_url)
    started = time.perf_counter()
    runs = value.refresh(engine, site_id, day=pd.Timestamp(day).date())
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # What a web process then does: load the snapshot's segments and VIP flags, look them up.
    from analytics import customer_segments

    started = time.perf_counter()
    held = customer_segments.load(engine, site_id)
    load_seconds = time.perf_counter() - started
    held_bytes = held.user_ids.nbytes + held.segments.nbytes + held.vips.nbytes
    probes = [f"c{i:07d}" for i in range(0, 1_000_000, 97)] + ["nobody"] * 1000
    started = time.perf_counter()
    for user_id in probes:
        held.lookup(user_id)
    lookup_us = (time.perf_counter() - started) / len(probes) * 1e6
    out.send(
        (
            seconds,
            peak_kb,
            [(r.currency, r.customers, r.orders, r.fitted, r.fit_error) for r in runs],
            (len(held), int(held.vips.sum()), load_seconds, held_bytes, lookup_us),
        )
    )


def refresh_speed(
    customers: int, pg_url: str, out: list[str], bench_db: str = "ecrm_bench_value"
) -> bool:
    import multiprocessing as mp

    rng = np.random.default_rng(20261204)
    db_url = _bench_database(pg_url, bench_db)
    started = time.perf_counter()
    site_id, order_count = _generate_orders(db_url, customers, 5 * customers, rng)
    loaded = time.perf_counter() - started
    log(f"loaded {order_count:,} orders in {loaded:.0f} s; refreshing")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_refresh_child, args=(db_url, site_id, "2026-12-31", child))
    process.start()
    seconds, peak_kb, runs, (held, vips, load_s, held_bytes, lookup_us) = parent.recv()
    process.join()
    peak_gb = peak_kb / 1024 / 1024
    ok = seconds < REFRESH_TARGET_S and peak_gb < REFRESH_TARGET_GB
    described = "; ".join(
        f"{c}: {n:,} customers, {o:,} orders, {'fitted' if f else 'not fitted: ' + str(e)}"
        for c, n, o, f, e in runs
    )
    out += [
        f"Refresh end to end (`analytics.value.refresh`: the database sums the orders per "
        f"customer, RFM, both fits, every customer's scores written with COPY) on a generated "
        f"PostgreSQL store of "
        f"{customers:,} customers and {order_count:,} orders (loaded in {loaded:.0f} s, not "
        f"timed): **{seconds:.1f} s**, peak resident memory **{peak_gb:.2f} GB** (targets under "
        f"{REFRESH_TARGET_S:.0f} s and {REFRESH_TARGET_GB:.0f} GB: "
        f"{'met' if ok else '**missed**'}). {described}. The refresh's last steps are "
        "included: each snapshot's summary for the console and `ANALYZE value_scores`.",
        "",
        f"Then what each web process does after a refresh (`analytics.customer_segments.load`, "
        f"in the same child): the snapshot's segment and VIP flag of {held:,} customers "
        f"({vips:,} VIPs) read in **{load_s:.1f} s** into {held_bytes / 1e6:.1f} MB of arrays; "
        f"a lookup (binary search of the sorted ids) takes **{lookup_us:.1f} µs**.",
        "",
    ]
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000, help="for the fit's speed")
    parser.add_argument("--no-results", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument("--refresh", action="store_true", help="also time the refresh (slow)")
    parser.add_argument("--refresh-customers", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="a PostgreSQL server (db made)")
    parser.add_argument(
        "--bench-db",
        default="ecrm_bench_value",
        help="the database the refresh bench drops and creates on that server (give your own "
        "when another run may be using the default)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    data = cdnow_dir()
    body: list[str] = []
    log("CDNOW: our fit, lifetimes' fit, the published parameters")
    ok = published_table(data, body)
    log("CDNOW: 39-week holdout")
    holdout_table(data, body)
    log(f"BG/NBD fit on {args.customers:,} simulated customers")
    ok &= fit_speed(args.customers, body)
    if args.refresh:
        log(f"refresh of {args.refresh_customers:,} customers")
        ok &= refresh_speed(args.refresh_customers, args.pg_url, body, args.bench_db)
    else:
        body += [
            "The refresh of 1M customers with 5M orders was not timed in this run "
            "(`python bench/value.py --refresh`).",
        ]
    whole = time.perf_counter() - started
    section = [
        HEADING,
        "",
        f"- Machine: {machine_line()}",
        f"- Date: {machine_info()['date']} (whole run {whole:.0f} s; load average at the end "
        f"{os.getloadavg()[0]:.1f} on 2 cores: other work shared the machine)",
        f"- Command: `{command_line('bench/value.py', argv)}`",
        "",
        *body,
    ]
    text = "\n".join(section)
    print(text)
    if not args.no_results:
        write_section(RESULTS, HEADING, text)
        log(f"wrote {RESULTS}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
