"""BG/NBD and Gamma-Gamma (analytics.clv): exact log-likelihoods, gradients, CDNOW, forecasts."""

from __future__ import annotations

import importlib.util
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from analytics import clv


def _factorial_ratio(top: int, bottom: int) -> int:
    """Gamma(top) / Gamma(bottom) for whole numbers top >= bottom >= 1."""
    return math.prod(range(bottom, top))


def _beta(a: int, b: int) -> Fraction:
    return Fraction(math.factorial(a - 1) * math.factorial(b - 1), math.factorial(a + b - 1))


def _log(value: Fraction) -> float:
    return math.log(value.numerator) - math.log(value.denominator)


def exact_bgnbd_ll(r: int, alpha: int, a: int, b: int, x: int, t_x: int, T: int) -> float:
    """FHL 2005 eq. 6 with whole-number parameters, in exact rational arithmetic."""
    gamma_part = Fraction(_factorial_ratio(r + x, r) * alpha**r)
    first = _beta(a, b + x) / _beta(a, b) * gamma_part / (alpha + T) ** (r + x)
    second = Fraction(0)
    if x > 0:
        second = _beta(a + 1, b + x - 1) / _beta(a, b) * gamma_part / (alpha + t_x) ** (r + x)
    return _log(first + second)


def exact_gg_ll(p: int, q: int, gamma: int, x: int, m: Fraction) -> float:
    """The Gamma-Gamma density of a mean spend m over x transactions, exactly (m rational)."""
    coefficient = Fraction(
        math.factorial(p * x + q - 1), math.factorial(p * x - 1) * math.factorial(q - 1)
    )
    value = coefficient * gamma**q * Fraction(x) ** (p * x) * m ** (p * x - 1)
    return _log(value / (gamma + m * x) ** (p * x + q))


def test_no_repeat_purchase_has_the_closed_form_value():
    # With x = 0 the Beta and Gamma ratios cancel: LL = r ln(alpha / (alpha + T)).
    r, alpha, a, b, T = 0.243, 4.414, 0.793, 2.426, 38.86
    got = clv.bgnbd_log_likelihood(r, alpha, a, b, [0], [0], [T])
    assert got[0] == pytest.approx(r * math.log(alpha / (alpha + T)), rel=1e-12)
    assert clv.bgnbd_log_likelihood(1, 4, 2, 3, [0], [0], [39])[0] == pytest.approx(
        exact_bgnbd_ll(1, 4, 2, 3, 0, 0, 39), rel=1e-12
    )


@pytest.mark.parametrize(
    ("r", "alpha", "a", "b", "x", "t_x", "T"),
    [
        (2, 3, 2, 5, 200, 50, 60),  # 200 repeat purchases: Gamma(202) alone overflows a float
        (1, 1, 1, 1, 200, 1, 1000),  # the last purchase long ago: the two terms differ by 1e600
        (3, 10, 4, 2, 1, 5, 20),
        (1, 2, 3, 4, 7, 0, 0),  # every purchase at time 0
    ],
)
def test_log_likelihood_matches_exact_arithmetic(r, alpha, a, b, x, t_x, T):
    expected = exact_bgnbd_ll(r, alpha, a, b, x, t_x, T)
    got = clv.bgnbd_log_likelihood(r, alpha, a, b, [x], [t_x], [T])[0]
    assert np.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-10)


def test_the_naive_formula_overflows_where_ours_does_not():
    with pytest.raises(OverflowError):
        math.gamma(202)  # the likelihood's Gamma(r + x) for r = 2, x = 200
    assert np.isfinite(clv.bgnbd_log_likelihood(2, 3, 2, 5, [200], [50], [60])).all()


@pytest.mark.parametrize(
    ("p", "q", "gamma", "x", "m"),
    [
        (6, 4, 15, 1, Fraction(2235, 100)),
        (6, 4, 15, 200, Fraction(40)),
        (2, 3, 1, 5, Fraction(1, 3)),
    ],
)
def test_gamma_gamma_log_likelihood_matches_exact_arithmetic(p, q, gamma, x, m):
    got = clv.gamma_gamma_log_likelihood(p, q, gamma, [x], [float(m)])[0]
    assert got == pytest.approx(exact_gg_ll(p, q, gamma, x, m), rel=1e-10)


def _rows(rng, n=500):
    x = rng.integers(0, 12, n).astype(float)
    T = rng.integers(1, 80, n).astype(float)
    t_x = np.where(x > 0, np.floor(rng.random(n) * T), 0.0)
    return x, t_x, T


def test_analytic_gradients_agree_with_finite_differences():
    rng = np.random.default_rng(7)
    x, t_x, T = _rows(rng)
    params = np.array([0.7, 3.0, 0.9, 2.2])
    _, grads = clv._bgnbd_terms(*params, x, t_x, T, gradient=True)
    for i in range(4):
        step = np.eye(4)[i] * 1e-6
        up = clv.bgnbd_log_likelihood(*(params + step), x, t_x, T).sum()
        down = clv.bgnbd_log_likelihood(*(params - step), x, t_x, T).sum()
        assert grads[i].sum() == pytest.approx((up - down) / 2e-6, rel=1e-5)
    m = rng.gamma(4, 5, len(x)) + 0.1
    keep = x > 0
    gg_params = np.array([5.0, 3.0, 12.0])
    _, gg_grads = clv._gg_terms(*gg_params, x[keep], m[keep], gradient=True)
    for i in range(3):
        step = np.eye(3)[i] * 1e-6
        up = clv.gamma_gamma_log_likelihood(*(gg_params + step), x[keep], m[keep]).sum()
        down = clv.gamma_gamma_log_likelihood(*(gg_params - step), x[keep], m[keep]).sum()
        assert gg_grads[i].sum() == pytest.approx((up - down) / 2e-6, rel=1e-5)


def _cdnow_summary() -> Path:
    spec = importlib.util.find_spec("lifetimes")  # finds the files without importing the package
    if spec is None or spec.origin is None:
        pytest.skip(
            "the lifetimes package (the CDNOW data files) is not installed: "
            "pip install -r requirements.txt"
        )
    return Path(spec.origin).parent / "datasets" / "cdnow_customers_summary_with_transactions.csv"


def test_cdnow_fit_matches_the_published_estimates():
    import pandas as pd

    summary = pd.read_csv(_cdnow_summary())
    bg = clv.fit_bgnbd(summary.x, summary.t_x, summary["T"])
    for name, published in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert getattr(bg, name) == pytest.approx(published, rel=0.005), name
    assert bg.log_likelihood == pytest.approx(-9582.4, abs=0.5)
    gg = clv.fit_gamma_gamma(summary.x, summary.zbar)
    for name, published in {"p": 6.25, "q": 3.74, "gamma": 15.44}.items():
        assert getattr(gg, name) == pytest.approx(published, rel=0.005), name
    assert gg.customers == int((summary.x > 0).sum())


def _simulated(rng, n: int, r=0.5, alpha=4.0, a=0.8, b=2.5, weeks=52):
    """Customers from the BG/NBD process, purchases on whole days (so some are identical)."""
    lam, drop = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    T = rng.integers(1, weeks * 7, n) / 7
    x, t_x, now = np.zeros(n), np.zeros(n), np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1 / lam[idx])
        bought = now[idx] <= T[idx]
        got = idx[bought]
        x[got] += 1
        t_x[got] = np.floor(now[got] * 7) / 7
        active[idx[~bought]] = False
        active[got[rng.random(len(got)) < drop[got]]] = False
    return x, t_x, T


def test_weights_fold_identical_customers():
    rng = np.random.default_rng(3)
    x, t_x, T = _simulated(rng, 2000)
    repeated = clv.fit_bgnbd(np.r_[x, x], np.r_[t_x, t_x], np.r_[T, T])
    weighted = clv.fit_bgnbd(x, t_x, T, weights=np.full(len(x), 2.0))
    assert weighted.customers == repeated.customers == 4000
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(weighted, name) == pytest.approx(getattr(repeated, name), rel=1e-5)


def test_new_customer_forecast_equals_the_mean_of_the_simulated_process():
    model = clv.BgNbd(0.5, 4.0, 1.5, 3.0, 0.0, 0, 0)
    rng = np.random.default_rng(11)
    n, horizon = 200_000, 20.0
    lam = rng.gamma(model.r, 1 / model.alpha, n)
    drop = rng.beta(model.a, model.b, n)
    now, count = np.zeros(n), np.zeros(n)
    active = np.ones(n, dtype=bool)
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1 / lam[idx])
        bought = now[idx] <= horizon
        got = idx[bought]
        count[got] += 1
        active[idx[~bought]] = False
        active[got[rng.random(len(got)) < drop[got]]] = False
    expected = float(clv.expected_purchases_new(model, horizon))
    assert expected == pytest.approx(count.mean(), abs=4 * count.std() / math.sqrt(n))
    # A customer seen only at time 0 is a new customer: eq. 10 reduces to eq. 9.
    conditional = clv.expected_purchases(model, horizon, [0], [0], [0])[0]
    assert conditional == pytest.approx(expected, rel=1e-9)


def test_p_alive_and_forecasts_behave():
    model = clv.BgNbd(0.243, 4.414, 0.793, 2.426, 0.0, 0, 0)
    alive = clv.p_alive(model, [0, 5, 5, 200], [0, 30, 5, 37], [38, 38, 38, 38])
    assert alive[0] == 1.0
    assert alive[1] > alive[2]  # the same purchases, the recent buyer is likelier alive
    assert 0 <= alive[3] <= 1 and np.isfinite(alive).all()
    weeks = [clv.expected_purchases(model, t, [5], [30], [38])[0] for t in (4, 13, 52)]
    assert 0 < weeks[0] < weeks[1] < weeks[2]


def test_customer_value_sums_discounted_steps():
    bg = clv.BgNbd(0.243, 4.414, 0.793, 2.426, 0.0, 0, 0)
    gg = clv.GammaGamma(6.25, 3.74, 15.44, 0.0, 0, 0)
    x, t_x, T, m = [2, 0], [30.4, 0], [38.9, 38.9], [22.35, 0]
    spend = clv.expected_spend(gg, x, m)
    assert spend[1] == pytest.approx(6.25 * 15.44 / 2.74)  # no repeats: the population mean
    undiscounted = clv.customer_value(bg, gg, x, t_x, T, m, horizon=52, step=4)
    assert undiscounted == pytest.approx(clv.expected_purchases(bg, 52, x, t_x, T) * spend)
    discounted = clv.customer_value(bg, gg, x, t_x, T, m, horizon=52, step=4, discount_rate=0.01)
    assert (discounted < undiscounted).all() and (discounted > 0).all()


def test_summarise_counts_purchase_days_and_repeat_spend():
    summary = clv.summarise(
        ["b", "a", "a", "a", "a", "c"],
        [3, 0, 0, 14, 21, 40],
        [10.0, 5.0, 7.0, 20.0, 30.0, 99.0],
        end_day=28,
    )
    assert list(summary.customer_ids) == ["a", "b"]  # c bought after the end
    assert list(summary.frequency) == [2, 0]  # two purchases on day 0 are one transaction
    assert list(summary.recency) == [3, 0]
    assert list(summary.T) == [4, 25 / 7]
    assert list(summary.monetary) == [25.0, 0.0]  # the first transaction is left out


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([0, 0, 0], [0, 0, 0], [5, 6, 7], "repeat purchases"),
        ([1, -1], [1, 0], [2, 2], "0 <= frequency"),
        ([1, 2], [3, 1], [2, 2], "recency <= T"),
        ([0, 1], [2, 1], [3, 3], "recency 0"),
        ([1, float("nan")], [1, 1], [2, 2], "finite"),
    ],
)
def test_bad_summaries_are_refused(x, t_x, T, message):
    with pytest.raises(clv.FitError, match=message):
        clv.fit_bgnbd(x, t_x, T)


def test_gamma_gamma_refuses_non_positive_spend():
    with pytest.raises(clv.FitError, match="positive mean spend"):
        clv.fit_gamma_gamma([1, 2, 3], [10.0, 0.0, 5.0])


def test_customers_all_alike_are_refused_rather_than_fitted_to_nonsense():
    # Everyone bought twice, the same sums: no interior maximum for Gamma-Gamma.
    with pytest.raises(clv.FitError, match="do not determine"):
        clv.fit_gamma_gamma([1] * 20, [11.0] * 20)
