"""Training speed benchmark's measuring processes: train() end to end, the bare fit, reads."""

from __future__ import annotations

import json
import resource
import threading
import time
from pathlib import Path

RSS_SAMPLE_SECONDS = 0.02


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    """Samples this process's VmRSS every few ms: (seconds since start, MB)."""

    def __init__(self, period: float = RSS_SAMPLE_SECONDS):
        super().__init__(daemon=True)
        self.period, self.samples, self.done = period, [], threading.Event()
        self.started_at = time.perf_counter()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append((time.perf_counter() - self.started_at, _status_kb("VmRSS") / 1024))
            self.done.wait(self.period)

    def stop(self) -> list[tuple[float, float]]:
        self.done.set()
        self.join()
        return self.samples


def child_pipeline(args: dict) -> dict:
    """Run train() once, as the product does, and say what it cost."""
    import implicit.cpu.als as cpu_als

    from recommender.interactions import Interactions
    from recommender.models import BlendParams
    from recommender.registry import ModelRegistry
    from recommender.training import TrainSettings, train
    from recommender.tuning import BlendConfig
    from tracking.db import make_engine

    calls: list[dict] = []
    original_fit = cpu_als.AlternatingLeastSquares.fit

    def recording_fit(self, user_items, *a, **kw):
        started = time.perf_counter()
        result = original_fit(self, user_items, *a, **kw)
        calls.append(
            {
                "seconds": time.perf_counter() - started,
                "shape": list(user_items.shape),
                "nnz": int(user_items.nnz),
                "params": {
                    "factors": int(self.factors),
                    "regularization": float(self.regularization),
                    "alpha": float(self.alpha),
                    "iterations": int(self.iterations),
                    "random_state": self.random_state,
                    "use_cg": bool(self.use_cg),
                },
                "matrix": user_items,  # a reference only (the pipeline holds it anyway)
            }
        )
        return result

    cpu_als.AlternatingLeastSquares.fit = recording_fit
    config = None
    if args["variant"] == "als":
        config = BlendConfig(blend=BlendParams({"als": 1.0}))
    engine = make_engine(args["url"])
    rss_before = _status_kb("VmRSS") / 1024
    marks: list[tuple[str, float]] = []
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    sampler.started_at = started
    report = train(
        engine,
        TrainSettings(args["site_id"], args["registry_dir"], tune_seconds=0, config=config),
        progress=lambda stage, message: marks.append((stage, time.perf_counter() - started)),
    )
    wall = time.perf_counter() - started
    samples = sampler.stop()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child's figure
    # would include this script's parent (which holds the generated shop) at the fork.
    peak_mb = _status_kb("VmHWM") / 1024
    ru_maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Taken after the figures above, for the bare fits: the matrix of all the data the promoted
    # model covers (its saved interactions) and the fit-split matrix train()'s ALS was fitted on.
    matrix_path = fit_matrix_path = None
    if calls and args.get("matrix_path") and report.promoted:
        full = Interactions.load(ModelRegistry(args["registry_dir"]).path() / "interactions")
        _save_matrix(args["matrix_path"], full.user_items)
        matrix_path = args["matrix_path"]
        fit_matrix_path = args["matrix_path"].replace(".npz", "-fit-split.npz")
        _save_matrix(fit_matrix_path, calls[-1]["matrix"])
    for call in calls:
        call.pop("matrix")
    # Peak RSS within each stage, from the samples and the stage boundaries.
    bounds, elapsed = [], 0.0
    for stage, seconds in report.timings.items():
        bounds.append((stage, elapsed, elapsed + seconds))
        elapsed += seconds
    bounds.append(("commit/promote", elapsed, wall + 1.0))
    stage_peak, stage_low = {}, {}
    for stage, low, high in bounds:
        inside = [mb for t, mb in samples if low <= t < high]
        if inside:
            stage_peak[stage], stage_low[stage] = max(inside), min(inside)
    return {
        "variant": args["variant"],
        "wall_s": wall,
        "timings": dict(report.timings),
        "promoted": report.promoted,
        "failures": list(report.failures),
        "metrics": report.metrics,
        "baseline": report.baseline,
        "n_users": report.n_users,
        "n_items": report.n_items,
        "n_interactions": report.n_interactions,
        "members": sorted(
            k for k, v in report.config.get("blend", {}).get("weights", {}).items() if v
        ),
        "config": report.config,
        "rss_before_mb": rss_before,
        "peak_mb": peak_mb,
        "ru_maxrss_mb": ru_maxrss_mb,
        "stage_peak_mb": stage_peak,
        "stage_low_mb": stage_low,
        "als_calls": calls,
        "matrix_path": matrix_path,
        "fit_matrix_path": fit_matrix_path,
        "marks": marks,
    }


def _save_matrix(path: str, matrix) -> None:
    import numpy as np
    import scipy.sparse as sp

    matrix = sp.csr_matrix(matrix)
    np.savez(
        path,
        data=matrix.data,
        indices=matrix.indices,
        indptr=matrix.indptr,
        shape=np.array(matrix.shape),
    )


def child_bare(args: dict) -> dict:
    """implicit's ALS alone on the saved matrix: nothing but the fit is timed."""
    import numpy as np
    import scipy.sparse as sp
    from implicit.als import AlternatingLeastSquares

    with np.load(args["matrix_path"], allow_pickle=False) as arrays:
        matrix = sp.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]),
            shape=tuple(int(n) for n in arrays["shape"]),
        )
    params = args["params"]
    rss_before = _status_kb("VmRSS") / 1024
    seconds = []
    for _ in range(args.get("repeats", 1)):
        model = AlternatingLeastSquares(**params)
        started = time.perf_counter()
        model.fit(matrix, show_progress=False)
        seconds.append(time.perf_counter() - started)
        del model
    return {
        "fit_s": seconds,
        "shape": list(matrix.shape),
        "nnz": int(matrix.nnz),
        "params": params,
        "rss_before_mb": rss_before,
        "peak_mb": _status_kb("VmHWM") / 1024,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "implicit_class": f"{AlternatingLeastSquares.__module__}.AlternatingLeastSquares",
    }


READ_MODES = {
    "log": "`read_events` from the interaction log (what `train()` reads)",
    "store": '`read_events(source="store")`: scanning `events` and `order_lines`, as before',
}


def child_read(args: dict) -> dict:
    """read_events alone."""
    import gc as collector

    from recommender.event_frames import read_events
    from tracking.db import make_engine

    engine = make_engine(args["url"])
    started = time.perf_counter()
    frame = read_events(engine, args["site_id"], source=args["mode"])
    seconds = time.perf_counter() - started
    collector.collect()
    return {
        "mode": args["mode"],
        "seconds": seconds,
        "rows": len(frame),
        "users": int(frame["user_id"].nunique()),
        "frame_mb": float(frame.memory_usage(deep=False).sum()) / 2**20,
        "peak_mb": _status_kb("VmHWM") / 1024,
        "rss_after_mb": _status_kb("VmRSS") / 1024,
    }


def child_main(kind: str, args_path: str, out_path: str) -> int:
    """Run one measurement from its JSON arguments; write its JSON result."""
    args = json.loads(Path(args_path).read_text())
    result = {"pipeline": child_pipeline, "bare": child_bare, "read": child_read}[kind](args)
    Path(out_path).write_text(json.dumps(result, default=_json_default))
    return 0


def _json_default(value):
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
