"""RFM (analytics.rfm): the seed's 1-3 scores, quintiles with ties, the R x F map, Pareto."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import rfm


def test_every_cell_of_the_grid_has_exactly_one_segment():
    cells = [cell for cells in rfm.SEGMENT_CELLS.values() for cell in cells]
    assert len(cells) == 25 and set(cells) == {(r, f) for r in range(1, 6) for f in range(1, 6)}
    assert set(rfm.SEGMENT_CELLS) == {
        "Champions",
        "Loyal",
        "Potential Loyalists",
        "New",
        "Promising",
        "Need Attention",
        "About to Sleep",
        "At Risk",
        "Can't Lose Them",
        "Hibernating",
    }
    assert rfm.segment_names([5, 1, 1, 5], [5, 5, 1, 1]).tolist() == [
        "Champions",
        "Can't Lose Them",
        "Hibernating",
        "New",
    ]


def test_seed_scores_cut_at_the_thresholds():
    t = rfm.SeedThresholds(recency_months=(1, 3), frequency_orders=(3, 2), money=(100, 50))
    r, f, m = rfm.seed_scores([0, 1, 2, 3, 4], [5, 3, 2, 1, 0], [100, 99.99, 50, 49.99, -20], t)
    assert r.tolist() == [3, 3, 2, 2, 1]
    assert f.tolist() == [3, 3, 2, 1, 1]
    assert m.tolist() == [3, 2, 2, 1, 1]  # a refund-heavy customer (negative net) scores 1


@pytest.mark.parametrize(
    ("settings", "field", "reason"),
    [
        ({"recency_months": (3, 1)}, "recency_months", "fewer"),
        ({"frequency_orders": (2, 3)}, "frequency_orders", "above"),
        ({"money": (50, 50)}, "money", "above"),
        ({"money": (100, -1)}, "money", "not negative"),
        ({"money": ("a lot", 5)}, "money", "numbers"),
        ({"money": (100,)}, "money", "two thresholds"),
        ({"monetary": (1, 2)}, "monetary", "unknown"),
    ],
)
def test_thresholds_out_of_order_are_refused_naming_the_field(settings, field, reason):
    with pytest.raises(rfm.ThresholdError) as caught:
        rfm.SeedThresholds.from_dict(settings)
    assert caught.value.field == field and reason in caught.value.reason


def test_quintiles_split_ties_deterministically_by_id():
    ids = np.array([f"c{i:03d}" for i in range(100)])
    orders = np.ones(100)  # everyone ordered once
    scores = rfm.quintiles(orders, ids)
    assert np.bincount(scores)[1:].tolist() == [20] * 5
    shuffled = np.random.default_rng(1).permutation(100)
    again = rfm.quintiles(orders[shuffled], ids[shuffled])
    assert dict(zip(ids[shuffled], again, strict=True)) == dict(zip(ids, scores, strict=True))


def test_quintiles_rank_higher_values_higher_and_recency_reversed():
    ids = np.arange(10)
    r, f, m, names = rfm.quintile_scores(
        ids,
        days_since_last_order=np.arange(10) * 10,  # customer 0 bought most recently
        orders=np.arange(10)[::-1] + 1,  # and most often
        money=np.arange(10),
    )
    assert r[0] == 5 and r[9] == 1
    assert f[0] == 5 and f[9] == 1
    assert m[0] == 1 and m[9] == 5
    assert names[0] == "Champions" and names[9] == "Hibernating"


def test_uneven_counts_fill_every_score():
    scores = rfm.quintiles(np.arange(7), np.arange(7))
    assert sorted(set(scores.tolist())) == [1, 2, 3, 4, 5]
    assert rfm.quintiles([], []).size == 0


def test_pareto_curve_and_vip_list():
    values = np.array([50.0, 30, 10, 5, 5, 0, 0, 0, 0, -10])  # a refund counts as no revenue
    curve = rfm.pareto(values)
    assert curve.revenue_of_top(0.1) == pytest.approx(0.5)
    assert curve.revenue_of_top(0.2) == pytest.approx(0.8)
    assert curve.revenue_of_top(1.0) == pytest.approx(1.0)
    assert curve.points(10)[1] == (0.2, pytest.approx(0.8))
    ids = np.array(list("abcdefghij"))
    assert ids[rfm.vip_mask(values, ids, 0.2)].tolist() == ["a", "b"]
    # ties at the cut go to the smaller id, every time
    assert ids[:4][rfm.vip_mask([1, 1, 1, 1], ids[:4], 0.5)].tolist() == ["a", "b"]
    with pytest.raises(rfm.ThresholdError):
        rfm.vip_mask(values, ids, 0)
    assert rfm.pareto([]).revenue_of_top(0.5) == 0.0
