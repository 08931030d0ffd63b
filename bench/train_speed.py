"""Training speed: the whole training job against the bare ``implicit`` fit on the same matrix.

    python bench/train_speed.py                          # 100k, 1M and 5M interactions (~13 min)
    python bench/train_speed.py --sizes 100k,1M --no-results --keep-data   # a quicker look

For each size, in one run:

1. data (not part of the measured pipeline; reported on its own): a temporary SQLite store (WAL)
   migrated with ``tracking.migrations.upgrade``, one site (``tracking.sites.create_site``), the
   catalogue through ``tracking.catalogue.upsert_items``, and a ``demo.generate_shop``
   shop (5,000 items, 12 taste clusters, 28 days) with as many customers as give about the
   target number of interactions: item events (Product Viewed / Clicked / Added, what
   ``read_events`` reads) plus order lines. Every event the generator makes is stored (pages,
   list views, carts, checkouts too, so the read has to skip them as in production), with the
   typed columns filled the way ``tracking/store.py`` fills them; ``payload`` holds a small JSON
   dict (type, name, messageId, product_id), not the full Segment event. ``identities``,
   ``orders`` and ``order_lines`` are derived as ``tracking/store.py`` does; ``sessions`` and
   ``customers`` are left empty (training reads neither). Sizes beyond one generated shop of
   ``--max-base-customers`` (about 1M interactions; the generator holds every event in memory)
   are copies of that shop made inside SQLite (INSERT ... SELECT) with customers, devices,
   messageIds and orders renamed and each copy shifted one minute later; copy 0 is the 1M store
   when that was built in the same run. Copy 0's events go in by DBAPI executemany through the
   SQLAlchemy connection (Core's per-row parameter processing costs about 45 µs a row),
   identities and orders by Core executemany, one transaction per store, the event indexes
   dropped during the load and rebuilt from ``tracking.schema`` afterwards; then the interaction
   log is written from the tables (``tracking.interaction_log.rebuild``), as the ingest worker
   would have appended it.
2. pipeline, each in a fresh Python process (so peak memory is per size and per variant):
   ``recommender.training.train(engine, TrainSettings(site_id, registry_dir=tmp,
   tune_seconds=0))`` (no search) timed end to end with its own per-stage timings, twice:
   (a) the default configuration (no ``config``: ``training.default_config``, the untuned blend
   of ALS, EASE, item-kNN and co-visitation) and (b) ALS alone
   (``BlendConfig(blend=BlendParams({"als": 1.0}))``). Peak memory is the process's VmHWM (not
   ``ru_maxrss``, which Linux carries across fork and exec from this script's own process); a
   thread samples VmRSS every 20 ms to say in which stage the peak fell. implicit's
   ``AlternatingLeastSquares.fit`` is wrapped to record each call (matrix, parameters, seconds);
   nothing else is changed.
3. bare fit, in a fresh process too: ``implicit.als.AlternatingLeastSquares`` with the factors,
   regularization, alpha, iterations, random_state and use_cg of the pipeline's ALS member,
   fitted on the matrix of all the data the promoted model covers (its saved ``interactions``;
   train() fits ALS once, on the fit split, and brings the user side up to date on this matrix),
   saved to .npz after the pipeline's figures were taken. Overhead = (b)'s end to end / bare
   fit. For information, a second bare fit on the fit-split matrix train() itself fitted.
4. when (b) misses the overhead target (``--profile auto``): a py-spy profile (``--nonblocking``)
   of one more run of (b) at 1M, charged to train()'s stages by line, and ``read_events`` alone,
   two rounds, from the interaction log and by scanning the tables.

Before each measurement the script waits (20 s at most) for other processes to go quiet, and
records the CPU they used meanwhile. ``OPENBLAS_NUM_THREADS=1`` everywhere (implicit runs its own
threads). The script prints a table and replaces the ``## Training speed
(bench/train_speed.py)`` section of bench/RESULTS.md (every other byte of the file is kept). No
figure from here is asserted by the test suite.
"""

from __future__ import annotations

import os

# implicit wants a single-threaded BLAS under its own threads; set before numpy loads.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from bench.harness.machine import CLK_TCK, find_py_spy, system_cpu, wait_for_quiet  # noqa: E402
from bench.harness.results import RESULTS, command_line, write_section  # noqa: E402
from bench.train_speed_child import READ_MODES, _json_default, child_main  # noqa: E402
from bench.train_speed_data import (  # noqa: E402
    N_ITEMS,
    SEED,
    BaseShop,
    _SpecOnly,
    load_store,
    parse_size,
    plan_shop,
    size_label,
)
from bench.train_speed_report import (  # noqa: E402
    QUIET_CORES,
    QUIET_WAIT_SECONDS,
    SECTION,
    TARGET_OVERHEAD,
    VARIANTS,
    render,
)

PY_SPY_CANDIDATES = ("/tmp/pyspy/bin/py-spy",)

READ_ROUNDS = 2


def run_child(kind: str, args: dict, workdir: Path, timeout: float, wrap=None) -> dict:
    """Run one measurement in a fresh interpreter; add wall time, CPU and other processes' load."""
    tag = f"{kind}-{args.get('label', '')}-{args.get('variant', '')}-{time.monotonic_ns()}"
    args_path, out_path = workdir / f"{tag}.args.json", workdir / f"{tag}.out.json"
    args_path.write_text(json.dumps(args))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, str(args_path),
               str(out_path)]  # fmt: skip
    if wrap:
        command = wrap(command)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    found = wait_for_quiet(QUIET_WAIT_SECONDS, QUIET_CORES, sample=1.0)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, total0 = system_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, start_new_session=True)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the session this script started, only
        process.wait()
        return {"error": f"stopped after the {timeout:.0f} s time limit"}
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    wall = time.perf_counter() - started
    busy1, total1 = system_cpu()
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0 or not out_path.exists():
        reason = f"exit code {code}" + (" (killed: out of memory?)" if code == -9 else "")
        return {"error": reason}
    result = json.loads(out_path.read_text())
    child_cpu = (after_children.ru_utime - before_children.ru_utime) + (
        after_children.ru_stime - before_children.ru_stime
    )
    machine_cpu = (busy1 - busy0) / CLK_TCK
    result["process_wall_s"] = wall
    result["process_cpu_s"] = child_cpu
    result["other_cores"] = max(machine_cpu - child_cpu, 0.0) / wall if wall > 0 else 0.0
    result["machine_busy"] = (busy1 - busy0) / max(total1 - total0, 1)
    result["waited_s"], result["quiet_before"] = found.waited_s, found.quiet
    return result


def train_laps(source: Path) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """(line of each ``lap("stage")`` call in train(), in order; the source lines by number)."""
    lines = source.read_text().splitlines()
    laps = []
    for number, line in enumerate(lines, 1):
        match = re.search(r'\blap\("([^"]+)"\)', line)
        if match and "def lap" not in line:
            laps.append((number, match.group(1)))
    return laps, {n: text.strip() for n, text in enumerate(lines, 1)}


def profile_stages(raw_path: Path, source: Path) -> dict:
    """py-spy's collapsed stacks of the train() call: shares per stage, line, function.

    A sample's stage is that of the line train() was on: the first ``lap("stage")`` at or after
    it (what TrainReport.timings charges it to); after the last lap, commit/promote.
    """
    laps, text = train_laps(source)
    per_stage, per_line, inclusive, own = Counter(), Counter(), Counter(), Counter()
    total = 0
    for line in raw_path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        at = next(
            (i for i, f in enumerate(frames) if f.startswith("train (recommender/training.py:")),
            None,
        )
        if at is None:
            continue
        count = int(count)
        total += count
        number = int(frames[at].rsplit(":", 1)[1].rstrip(")"))
        stage = next((name for lap_line, name in laps if lap_line >= number), "commit/promote")
        per_stage[stage] += count
        per_line[number] += count
        seen = set()
        for frame in frames[at:]:
            name = _function(frame)
            if name not in seen and ("recommender/" in frame or "tracking/" in frame):
                inclusive[name] += count
                seen.add(name)
        own[_function(frames[-1])] += count
    lines = {
        n: (text.get(n, "?"), next((s for at, s in laps if at >= n), "commit/promote"))
        for n in per_line
    }
    return {
        "total": total,
        "stages": per_stage,
        "lines": per_line,
        "line_text": lines,
        "inclusive": inclusive,
        "own": own,
    }


def _function(frame: str) -> str:
    """'name (path/file.py:123)' -> 'name (path/file.py)'; native frames as they are."""
    return re.sub(r":\d+\)$", ")", frame)


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with ``command`` set to how it reads in RESULTS.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        default="100k,1M,5M",
        help="target interactions per store, comma-separated (default 100k,1M,5M)",
    )
    p.add_argument(
        "--variants",
        default="default,als",
        help="pipelines to run: default (the blend train() uses) and/or als (ALS only)",
    )
    p.add_argument("--keep-data", action="store_true", help="keep the stores, models, matrices")
    p.add_argument(
        "--data-dir",
        default=None,
        help="work in this folder (kept) instead of a temporary one; a store already in it "
        "for the same size and shop is reused instead of generated again",
    )
    p.add_argument(
        "--max-base-customers",
        type=int,
        default=25_000,
        help="largest shop generated at once; bigger sizes copy it (default 25,000: ~1M)",
    )
    p.add_argument(
        "--bare-repeats", type=int, default=1, help="bare fits per size (the fastest counts)"
    )
    p.add_argument("--timeout", type=float, default=420.0, help="seconds per measuring process")
    p.add_argument(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="py-spy the ALS-only pipeline when the overhead target is missed (auto)",
    )
    p.add_argument("--py-spy", default=None, help="path of py-spy (default: PATH, /tmp/pyspy)")
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    p.add_argument("--results-json", default=None, help="also save the raw figures to this file")
    p.add_argument("--render-from", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child", nargs=3, metavar=("KIND", "ARGS", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    args.size_list = sorted({parse_size(s) for s in args.sizes.split(",") if s.strip()})
    args.variant_list = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variant_list) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {sorted(VARIANTS)}")
    args.command = command_line("bench/train_speed.py", argv)
    return args


def prepare(size: int, workdir: Path, args, bases: dict) -> dict:
    """The store for ``size``: reused from ``--data-dir`` when present, else generated."""
    customers, copies = plan_shop(size, args.max_base_customers)
    label = size_label(size)
    db_path = workdir / f"store-{label}.db"
    marker = workdir / f"store-{label}.json"
    key = {"customers": customers, "copies": copies, "seed": SEED, "items": N_ITEMS, "log": 1}
    if marker.exists() and db_path.exists():
        saved = json.loads(marker.read_text())
        if saved.get("key") == key:
            print(f"[{label}] reusing {db_path}", flush=True)
            return {**saved["data"], "reused": True, "generate_s": saved.get("generate_s")}
    for stale in workdir.glob(f"store-{label}.db*"):
        stale.unlink()
    generate_s = 0.0
    seed = None
    if copies > 1:
        # A one-copy store of the same shop (an earlier, smaller size) is copy 0 already.
        for other in sorted(workdir.glob("store-*.json")):
            saved = json.loads(other.read_text())
            other_db = other.with_suffix(".db")
            if saved.get("key") == {**key, "copies": 1} and other_db.exists():
                label_of = other.stem.removeprefix("store-")
                seed = {"path": other_db, "site_id": saved["data"]["site_id"], "label": label_of}
                break
    if seed:
        print(f"[{label}] copy 0 is the {seed['label']} store; {copies - 1} more inside SQLite",
              flush=True)  # fmt: skip
        data = load_store(db_path, bases.get(customers) or _SpecOnly(customers), copies, seed)
        marker.write_text(json.dumps({"key": key, "data": data, "generate_s": 0.0}))
        return {**data, "generate_s": 0.0}
    if customers not in bases:
        bases.clear()  # one shop in memory at a time
        print(f"[{label}] generating a shop of {customers:,} customers", flush=True)
        bases[customers] = BaseShop(customers)
        generate_s = bases[customers].seconds
    base = bases[customers]
    print(
        f"[{label}] loading {copies} cop{'y' if copies == 1 else 'ies'} into {db_path}", flush=True
    )
    data = load_store(db_path, base, copies)
    marker.write_text(json.dumps({"key": key, "data": data, "generate_s": generate_s}))
    return {**data, "generate_s": generate_s}


def main(argv=None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement in this fresh process)."""
    args = parse_args(argv)
    if args.child:
        return child_main(*args.child)
    if args.render_from:
        saved = json.loads(Path(args.render_from).read_text())
        args.command = saved["command"]
        profile = saved["profile"]
        if profile and profile.get("data"):
            data = profile["data"]
            for key in ("stages", "inclusive", "own"):
                data[key] = Counter(data[key])
            data["lines"] = Counter({int(k): v for k, v in data["lines"].items()})
            data["line_text"] = {int(k): tuple(v) for k, v in data["line_text"].items()}
        started = dt.datetime.fromisoformat(saved["started_at"])
        text = render(saved["runs"], args, started, saved["total_s"], profile)
        print(text)
        if not args.no_results:
            write_section(RESULTS, SECTION, text)
            print(f"wrote the '{SECTION}' section of {RESULTS.relative_to(PROJECT_ROOT)}")
        return 0
    started_at = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    if args.data_dir:
        workdir = Path(args.data_dir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="train-speed-"))
    runs: list[dict] = []
    bases: dict = {}
    profile = None
    try:
        for size in args.size_list:
            label = size_label(size)
            run = {"size": size, "label": label, "pipelines": {}}
            runs.append(run)
            try:
                data = prepare(size, workdir, args, bases)
            except Exception as e:  # report what happened, go on with the other sizes
                run["data"] = {"error": f"{type(e).__name__}: {e}"}
                print(f"[{label}] data failed: {e}", flush=True)
                continue
            run["data"], run["generate_s"] = data, data.get("generate_s")
            print(
                f"[{label}] {data['events']:,} events, {data['interactions']:,} interactions "
                f"(load {data['load_s']:.1f} s)",
                flush=True,
            )
            url = f"sqlite:///{workdir / f'store-{label}.db'}"
            matrix_path = workdir / f"matrix-{label}.npz"
            for variant in args.variant_list:
                registry = workdir / f"models-{label}-{variant}"
                shutil.rmtree(registry, ignore_errors=True)
                child_args = {
                    "label": label,
                    "variant": variant,
                    "url": url,
                    "site_id": data["site_id"],
                    "registry_dir": str(registry),
                    "matrix_path": str(matrix_path) if variant == "als" else None,
                }
                pipe = run_child("pipeline", child_args, workdir, args.timeout)
                run["pipelines"][variant] = pipe
                if "error" in pipe:
                    print(f"[{label}] pipeline {variant}: {pipe['error']}", flush=True)
                else:
                    print(
                        f"[{label}] pipeline {variant}: {pipe['wall_s']:.1f} s, peak "
                        f"{pipe['peak_mb']:,.0f} MB, {pipe['timings']}",
                        flush=True,
                    )
            als = run["pipelines"].get("als", {})
            if als.get("matrix_path") and als.get("als_calls"):
                bare = run_child(
                    "bare",
                    {
                        "label": label,
                        "matrix_path": als["matrix_path"],
                        "params": als["als_calls"][-1]["params"],
                        "repeats": args.bare_repeats,
                    },
                    workdir,
                    args.timeout,
                )
                run["bare"] = bare
                if "error" in bare:
                    print(f"[{label}] bare fit: {bare['error']}", flush=True)
                else:
                    print(
                        f"[{label}] bare fit: {bare['fit_s']} s, peak {bare['peak_mb']:,.0f} MB",
                        flush=True,
                    )
            if als.get("fit_matrix_path") and als.get("als_calls"):
                split = run_child(
                    "bare",
                    {
                        "label": f"{label}-fit-split",
                        "matrix_path": als["fit_matrix_path"],
                        "params": als["als_calls"][-1]["params"],
                        "repeats": args.bare_repeats,
                    },
                    workdir,
                    args.timeout,
                )
                run["bare_fit_split"] = split
                print(f"[{label}] bare fit on the fit split: {split.get('fit_s')} s", flush=True)
        profile = maybe_profile(runs, workdir, args)
    finally:
        bases.clear()
        if not (args.keep_data or args.data_dir):
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"data kept in {workdir}", flush=True)
    total_s = time.perf_counter() - clock
    if args.results_json:
        saved = {"runs": runs, "profile": profile, "command": args.command,
                 "started_at": started_at.isoformat(), "total_s": total_s}  # fmt: skip
        Path(args.results_json).write_text(json.dumps(saved, default=_json_default))
    text = render(runs, args, started_at, total_s, profile)
    print(text)
    if not args.no_results:
        write_section(RESULTS, SECTION, text)
        print(f"wrote the '{SECTION}' section of {RESULTS.relative_to(PROJECT_ROOT)}")
    return 0


def maybe_profile(runs: list[dict], workdir: Path, args) -> dict | None:
    """Where the ALS-only pipeline's time goes, when it misses the overhead target.

    A py-spy profile of one more run of (b) (1M when measured, else the largest size that
    missed), then ``read_events`` alone, as it is and with the changes the findings propose.
    """
    if args.profile == "never":
        return None
    candidates = []
    for run in runs:
        pipe, bare = run["pipelines"].get("als", {}), run.get("bare") or {}
        if "wall_s" in pipe and bare.get("fit_s"):
            missed = pipe["wall_s"] / min(bare["fit_s"]) > TARGET_OVERHEAD
            if missed or args.profile == "always":
                candidates.append(run)
    if not candidates:
        return None
    run = next((r for r in candidates if r["size"] == 1_000_000), candidates[-1])
    url = "sqlite:///" + str(workdir / f"store-{run['label']}.db")
    result: dict = {"label": run["label"], "what": f"{run['label']} (b) ALS only"}
    py_spy = find_py_spy(args.py_spy, PY_SPY_CANDIDATES)
    if not py_spy:
        result["error"] = "py-spy not found (pip install py-spy, or --py-spy PATH)"
    else:
        rate = 100
        raw = workdir / f"profile-{run['label']}.txt"
        registry = workdir / f"models-{run['label']}-profile"
        shutil.rmtree(registry, ignore_errors=True)
        options = ["record", "--nonblocking", "--format", "raw", "--rate", str(rate)]

        def wrap(command):
            return [py_spy, *options, "-o", str(raw), "--", *command]

        print(f"[{run['label']}] profiling the ALS-only pipeline with py-spy", flush=True)
        pipe = run_child(
            "pipeline",
            {"label": run["label"], "variant": "als", "url": url,
             "site_id": run["data"]["site_id"], "registry_dir": str(registry),
             "matrix_path": None},
            workdir,
            args.timeout,
            wrap=wrap,
        )  # fmt: skip
        if "error" in pipe or not raw.exists():
            result["error"] = pipe.get("error", "py-spy wrote no profile")
        else:
            result.update(
                rate=rate,
                command=f"py-spy {' '.join(options)} -o profile.txt -- python "
                "bench/train_speed.py --child pipeline ...",
                wall_s=pipe["wall_s"],
                timings=pipe["timings"],
                data=profile_stages(raw, PROJECT_ROOT / "recommender" / "training.py"),
            )
    reads: dict[str, dict] = {}
    for round_ in range(READ_ROUNDS):  # interleaved, the fastest of each mode counts
        for mode in READ_MODES:
            print(f"[{run['label']}] read_events alone ({round_ + 1}): {mode}", flush=True)
            read = run_child(
                "read",
                {"label": run["label"], "mode": mode, "url": url,
                 "site_id": run["data"]["site_id"]},
                workdir,
                args.timeout,
            )  # fmt: skip
            best = reads.get(mode)
            if "error" in read:
                reads.setdefault(mode, read)
                continue
            read["all_seconds"] = (best or {}).get("all_seconds", []) + [read["seconds"]]
            if best is None or "error" in best or read["seconds"] < best["seconds"]:
                reads[mode] = read
            else:
                best["all_seconds"] = read["all_seconds"]
    result["reads"] = reads
    return result


if __name__ == "__main__":
    sys.exit(main())
