"""Lift statistics: published worked examples, scipy's own tests, and simulated experiments.

The simulation is the issue's correctness test: over 1,000 seeded A/A experiments the 95%
intervals of the relative lift cover zero between 93.5% and 96.5% of the time, for conversion
and for revenue per visitor, and a planted +10% effect is estimated without bias.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp

from analytics import stats


# Newcombe, "Two-sided confidence intervals for the single proportion" (Stat Med 1998), Table I.
@pytest.mark.parametrize(
    "successes, n, low, high",
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_newcombes_examples(successes, n, low, high):
    got = stats.wilson_interval(successes, n)
    assert np.round(got, 4).tolist() == [low, high]


# Newcombe, "Interval estimation for the difference between independent proportions"
# (Stat Med 1998), Table II, method 10.
@pytest.mark.parametrize(
    "x1, n1, x2, n2, low, high",
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0),
    ],
)
def test_newcombe_difference_matches_table_ii(x1, n1, x2, n2, low, high):
    difference, got_low, got_high = stats.newcombe_difference(x1, n1, x2, n2)
    assert difference == pytest.approx(x1 / n1 - x2 / n2)
    assert np.round([got_low, got_high], 4).tolist() == [low, high]


def test_newcombe_is_vectorised():
    difference, low, high = stats.newcombe_difference([56, 9], [70, 10], [48, 3], [80, 10])
    assert np.round(low, 4).tolist() == [0.0524, 0.1705]
    assert np.round(high, 4).tolist() == [0.3339, 0.8090]


@pytest.mark.parametrize("x1, n1, x2, n2", [(30, 1000, 18, 900), (5, 40, 9, 41), (0, 10, 3, 12)])
def test_two_proportion_p_value_is_the_uncorrected_chi_square_test(x1, n1, x2, n2):
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    expected = sp.chi2_contingency(table, correction=False).pvalue
    assert stats.two_proportion_p_value(x1, n1, x2, n2) == pytest.approx(expected, rel=1e-9)


def test_welch_agrees_with_scipy():
    rng = np.random.default_rng(7)
    treatment = rng.lognormal(3.0, 1.0, 400) * (rng.random(400) < 0.2)
    holdout = rng.lognormal(3.0, 1.2, 150) * (rng.random(150) < 0.15)
    difference, low, high, t, df, p = stats.welch_test(
        treatment.mean(), treatment.var(ddof=1), 400, holdout.mean(), holdout.var(ddof=1), 150
    )
    expected = sp.ttest_ind(treatment, holdout, equal_var=False)
    assert t == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-10)
    assert df == pytest.approx(expected.df, rel=1e-10)
    interval = expected.confidence_interval(0.95)
    assert [low, high] == pytest.approx([interval.low, interval.high], rel=1e-10)
    assert difference == pytest.approx(treatment.mean() - holdout.mean())


def test_the_cap_is_the_pooled_99th_percentile():
    treatment = np.arange(100.0)
    holdout = np.arange(100.0, 200.0)
    capped_t, capped_h, cap = stats.pooled_cap(treatment, holdout)
    assert cap == pytest.approx(np.percentile(np.arange(200.0), 99))
    assert capped_t.tolist() == treatment.tolist()  # all below the pooled cap
    assert capped_h.max() == pytest.approx(cap) and (capped_h < holdout).sum() == 2


def test_sample_ratio_mismatch_flags_a_broken_split_only():
    assert stats.sample_ratio_mismatch(5000, 1000, 0.05) < stats.SRM_ALPHA
    assert stats.sample_ratio_mismatch(9500, 500, 0.05) == pytest.approx(1.0)
    assert stats.sample_ratio_mismatch(9450, 550, 0.05) > stats.SRM_ALPHA  # chance, not a bug
    expected = sp.chisquare([9400, 600], [9500, 500]).pvalue
    assert stats.sample_ratio_mismatch(9400, 600, 0.05) == pytest.approx(expected)


def test_visitors_needed_for_means_is_the_textbook_value():
    # Effect size d = 0.5 (a 5% lift of a mean of 10 with sd 1): 63 per group by the normal
    # approximation, the classic (z_0.975 + z_0.8)^2 * 2 / d^2 = 62.8.
    treatment, holdout = stats.visitors_needed_mean(10.0, 1.0, 1.0, 0.5)
    assert treatment == pytest.approx(62.79, abs=0.01) and holdout == pytest.approx(62.79, abs=0.01)
    # With a 20% holdout there are 4 treatment visitors per holdout visitor.
    treatment, holdout = stats.visitors_needed_mean(10.0, 1.0, 1.0, 0.2)
    assert treatment == pytest.approx(4 * holdout)


@pytest.mark.parametrize("share", [0.5, 0.1])
def test_visitors_needed_for_conversion_gives_80_percent_power(share):
    """Experiments of exactly the size asked for, with a true 5% lift, reject in about 80%."""
    baseline = 0.03
    need_t, need_h = (int(np.ceil(n)) for n in stats.visitors_needed_conversion(baseline, share))
    assert need_t / need_h == pytest.approx((1 - share) / share, rel=1e-4)  # the configured split
    if share == 0.5:
        assert need_t == need_h == 207_938  # Fleiss' formula for 3.00% against 3.15%
    rng = np.random.default_rng(2026)
    runs = 4000
    x_t = rng.binomial(need_t, baseline * 1.05, runs)
    x_h = rng.binomial(need_h, baseline, runs)
    power = np.mean(stats.two_proportion_p_value(x_t, need_t, x_h, need_h) < 0.05)
    # The binomial standard error of the rejection rate is sqrt(0.8 * 0.2 / 4000) = 0.0063.
    assert abs(power - 0.8) < 3 * 0.0063


@pytest.mark.parametrize(
    "x1, n1, x2, n2",
    [(0, 0, 0, 0), (0, 100, 0, 100), (5, 100, 0, 100), (0, 100, 5, 100), (5, 100, 0, 0)],
)
def test_degenerate_counts_give_no_interval_and_no_warning(x1, n1, x2, n2):
    lift, low, high = stats.conversion_lift(x1, n1, x2, n2)
    assert stats.finite(lift) is None and stats.finite(low) is None and stats.finite(high) is None
    if not n1 or not n2:
        assert all(stats.finite(v) is None for v in stats.newcombe_difference(x1, n1, x2, n2))
    if x1 + x2 == 0:
        assert stats.finite(stats.two_proportion_p_value(x1, n1, x2, n2)) is None


def test_revenue_that_does_not_vary_gives_no_test():
    values = np.full(50, 20.0)
    m1, v1, m2, v2, _cap = stats.capped_moments(values, values)
    assert all(stats.finite(v) is None for v in stats.welch_test(m1, v1, 50, m2, v2, 50)[1:])
    assert all(stats.finite(v) is None for v in stats.mean_lift(m1, v1, 50, m2, v2, 50)[1:])
    assert stats.finite(stats.visitors_needed_mean(m2, v1, v2, 0.5)[1]) is None


def test_verdicts_say_what_the_numbers_mean():
    estimate = {"lift": 0.12, "lift_ci": [0.04, 0.21], "p_value": 0.003}
    assert stats.metric_verdict("conversion", estimate, (0, 0), None) == (
        "lift",
        "recommendations lift conversion by 12.0% (95% CI +4.0% to +21.0%, p = 0.003)",
    )
    estimate = {"lift": -0.2, "lift_ci": [-0.3, -0.1], "p_value": 0.0001}
    assert stats.metric_verdict("conversion", estimate, (0, 0), None)[1].startswith(
        "recommendations lower conversion by 20.0% (95% CI -30.0% to -10.0%, p < 0.001)"
    )
    estimate = {"lift": 0.02, "lift_ci": [-0.1, 0.15], "p_value": 0.6}
    code, text = stats.metric_verdict("conversion", estimate, (123_456, 123_001), None)
    assert code == "not_enough_data"
    assert text.startswith(
        "not enough data yet: about 130,000 more visitors per group to detect a 5% lift with 80%"
    )
    text = stats.metric_verdict("conversion", estimate, (190_000, 9_512), None)[1]
    assert "about 9,600 more visitors in the holdout and 190,000 in treatment" in text
    assert stats.metric_verdict("conversion", estimate, (0, 0), None)[0] == "no_difference"
    no_estimate = {"lift": None, "lift_ci": None, "p_value": None}
    assert stats.metric_verdict("conversion", no_estimate, None, "no visitors in this range") == (
        "not_enough_data",
        "not enough data yet: no visitors in this range",
    )


# The simulation. Realistic traffic: 3% of visitors buy, order values lognormal (median 33,
# mean 55, a long right tail), a few thousand visitors per group.
RUNS = 1000
BASELINE = 0.03


def simulate(seed: int, n_treatment: int, n_holdout: int, effect: float):
    """RUNS experiments: (lift, low, high) arrays for conversion and for capped revenue.

    The effect multiplies the treatment's chance to buy and leaves order values alone, so the
    true lift is ``effect`` for conversion and for revenue per visitor, capped or not (both
    groups are capped at the same value: E[min(spend, cap)] is the buyers' share times a
    quantity the groups share).
    """
    rng = np.random.default_rng(seed)
    conversion, revenue = [], []
    chunk = 250  # experiments at a time, to keep memory small
    for _ in range(RUNS // chunk):
        bought_t = rng.random((chunk, n_treatment)) < BASELINE * (1 + effect)
        bought_h = rng.random((chunk, n_holdout)) < BASELINE
        spend_t = np.where(bought_t, rng.lognormal(3.5, 1.0, bought_t.shape), 0.0)
        spend_h = np.where(bought_h, rng.lognormal(3.5, 1.0, bought_h.shape), 0.0)
        x_t, x_h = bought_t.sum(axis=1), bought_h.sum(axis=1)
        conversion.append(stats.conversion_lift(x_t, n_treatment, x_h, n_holdout))
        m1, v1, m2, v2, _cap = stats.capped_moments(spend_t, spend_h)
        revenue.append(stats.mean_lift(m1, v1, n_treatment, m2, v2, n_holdout))
    return {
        "conversion": [np.concatenate(parts) for parts in zip(*conversion, strict=True)],
        "revenue": [np.concatenate(parts) for parts in zip(*revenue, strict=True)],
    }


# Balanced groups, and a 20% holdout (the shape of a real holdout, smaller than treatment).
SIZES = [pytest.param(5000, 5000, id="5000-5000"), pytest.param(8000, 2000, id="8000-2000")]


@pytest.mark.parametrize("n_treatment, n_holdout", SIZES)
def test_aa_intervals_cover_zero_95_percent_of_the_time(n_treatment, n_holdout):
    """1,000 A/A experiments: the 95% interval of the lift covers 0 in 93.5% to 96.5% of runs.

    The band is the issue's: with a perfect interval the observed coverage has a binomial
    standard error of sqrt(0.95 * 0.05 / 1000) = 0.0069, so the band is +- 2.2 of those and
    about 3% of seeds would fail even then; the seed is fixed, so the test is deterministic.
    An interval 10% too narrow (z = 1.76) covers about 92% and fails it.
    """
    results = simulate(20261203, n_treatment, n_holdout, effect=0.0)
    for metric in ("conversion", "revenue"):
        lift, low, high = results[metric]
        assert np.isfinite(lift).all()
        coverage = np.mean((low <= 0) & (0 <= high))
        assert 0.935 <= coverage <= 0.965, f"{metric}: 95% intervals covered 0 in {coverage:.1%}"


@pytest.mark.parametrize("n_treatment, n_holdout", SIZES)
def test_a_planted_10_percent_lift_is_estimated_without_bias(n_treatment, n_holdout):
    """With a true +10% lift the mean estimate lies within 3 standard errors of +10%.

    The standard error of the mean of RUNS estimates is sd / sqrt(RUNS) (about 0.4 to 0.6
    points of lift here); 3 of them leave an unbiased estimator a 0.3% chance to fail. They
    catch the plain ratio p1 / p2 - 1 (without the bias correction of stats.conversion_lift and
    stats.mean_lift), whose bias of about (1 - p2) / (holdout conversions) is 1.6 points with
    the 2,000-visitor holdout (0.6 with 5,000, too little for 1,000 runs to show). The intervals
    must still cover the true +10%.
    """
    results = simulate(20261204, n_treatment, n_holdout, effect=0.10)
    for metric in ("conversion", "revenue"):
        lift, low, high = results[metric]
        standard_error = lift.std(ddof=1) / np.sqrt(RUNS)
        assert abs(lift.mean() - 0.10) <= 3 * standard_error, (
            f"{metric}: mean estimate {lift.mean():+.4f}, standard error {standard_error:.4f}"
        )
        coverage = np.mean((low <= 0.10) & (0.10 <= high))
        assert 0.935 <= coverage <= 0.965, f"{metric}: covered +10% in {coverage:.1%}"


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_without_a_holdout_nothing_is_needed_or_mismatched(share):
    assert stats.finite(stats.sample_ratio_mismatch(100, 0, share)) is None
    assert all(stats.finite(n) is None for n in stats.visitors_needed_conversion(0.03, share))
    assert all(stats.finite(n) is None for n in stats.visitors_needed_mean(5.0, 1.0, 1.0, share))
