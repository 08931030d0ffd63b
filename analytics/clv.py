"""Lifetime value: BG/NBD for repeat purchases, Gamma-Gamma for spend, fitted by maximum likelihood.

Why our own code and not the `lifetimes` package: it has had no release since 2020, pulls in
autograd and dill, and fits through generic numerical gradients; the refresh of issue 14 fits a
million customers on two cores. Here each log-likelihood is one vectorised numpy expression with
its analytic gradient, minimised by scipy's L-BFGS-B over the logarithms of the parameters (so
they stay positive without bounds). `lifetimes` is only a benchmark dependency (bench/value.py
compares both fits on the CDNOW data); it is never imported here.

Sources (the notation stays inside the functions that implement them):
- BG/NBD: Fader, Hardie & Lee, "Counting Your Customers the Easy Way: An Alternative to the
  Pareto/NBD Model", Marketing Science 24(2), 2005; eqs. 6, 9, 10 and the note "Computing P(alive)
  using the BG/NBD model" (Fader, Hardie & Lee 2008).
- Gamma-Gamma: Fader, Hardie & Lee, "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis", JMR 42(4), 2005, and Fader & Hardie, "The Gamma-Gamma Model of Monetary Value" (2013).

Data per customer, in one time unit (weeks in the benchmark and the refresh): ``frequency`` x =
repeat purchases (periods with a purchase after the first), ``recency`` t_x = age at the last
purchase, ``T`` = age at the end of the observation, ``monetary`` = mean value of the repeat
purchases. Arrays are float64 numpy arrays of one length; ``weights`` (optional) count identical
customers, so a summary can be compressed before fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

MAX_LOG_PARAMETER = 25.0  # parameters beyond e**+-25 mean the likelihood has no interior maximum


class FitError(ValueError):
    """The data cannot be fitted (too few customers, no repeat purchases, bad values)."""


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters: purchase rate ~ Gamma(r, alpha), dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int
    iterations: int


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters: spend ~ Gamma(p, nu), nu ~ Gamma(q, gamma)."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int
    iterations: int


def _arrays(*values) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in values]


def _check_rft(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
    if not (x.shape == t_x.shape == T.shape) or x.ndim != 1:
        raise FitError("frequency, recency and T must be 1-d arrays of one length")
    if not (np.isfinite(x).all() and np.isfinite(t_x).all() and np.isfinite(T).all()):
        raise FitError("frequency, recency and T must be finite numbers")
    if (x < 0).any() or (t_x < 0).any() or (t_x > T).any():
        raise FitError("need 0 <= frequency and 0 <= recency <= T for every customer")
    if ((x == 0) & (t_x != 0)).any():
        raise FitError("a customer without repeat purchases has recency 0")


def bgnbd_log_likelihood(r: float, alpha: float, a: float, b: float, x, t_x, T) -> np.ndarray:
    """Per-customer log-likelihood of BG/NBD (FHL 2005 eq. 6), computed in logs throughout.

    The two terms of the likelihood are combined with log-sum-exp, so 200 repeat purchases (whose
    Gamma and power terms overflow a float) give a finite value.
    """
    x, t_x, T = _arrays(x, t_x, T)
    return _bgnbd_terms(r, alpha, a, b, x, t_x, T)[0]


class _Rows:
    """Customers' (x, t_x, T) with each column's distinct values: the special functions (Gamma,
    digamma, logs) are computed once per distinct value and gathered, which is most of a fit's
    work saved (purchase counts take few values, times are whole days)."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray):
        self.x = x
        self.repeat = x > 0
        self.ux, self.ix = np.unique(x, return_inverse=True)
        self.ut, self.it = np.unique(t_x, return_inverse=True)
        self.uT, self.iT = np.unique(T, return_inverse=True)


def _bgnbd_terms(r, alpha, a, b, x, t_x, T, gradient: bool = False):
    return _bgnbd_rows(r, alpha, a, b, _Rows(x, t_x, T), gradient)


def _bgnbd_rows(r, alpha, a, b, rows: _Rows, gradient: bool = False):
    x, repeat, ux, ix = rows.x, rows.repeat, rows.ux, rows.ix
    aT, at = alpha + rows.uT, alpha + rows.ut
    log_aT, log_at = np.log(aT)[rows.iT], np.log(at)[rows.it]
    A1 = (special.gammaln(r + ux) - special.gammaln(r) + r * np.log(alpha))[ix]
    A2 = (
        special.gammaln(a + b)
        + special.gammaln(b + ux)
        - special.gammaln(b)
        - special.gammaln(a + b + ux)
    )[ix]
    rx = r + x
    A3 = -rx * log_aT
    # B(a+1, b+x-1) / B(a, b+x) = a / (b+x-1); only customers with a repeat purchase have it.
    bx1 = np.where(ux > 0, b + ux - 1, 1.0)
    A4 = np.where(repeat, (np.log(a) - np.log(bx1))[ix] - rx * log_at, -np.inf)
    L34 = np.logaddexp(A3, A4)
    ll = A1 + A2 + L34
    if not gradient:
        return ll, None
    w3 = np.exp(A3 - L34)
    w4 = 1.0 - w3  # the two weights sum to 1; w4 is 0 where there is no repeat purchase
    d_r = (
        (special.digamma(r + ux) - special.digamma(r) + np.log(alpha))[ix]
        - w3 * log_aT
        - w4 * log_at
    )
    d_alpha = r / alpha - rx * (w3 / aT[rows.iT] + w4 / at[rows.it])
    psi_ab, psi_abx = special.digamma(a + b), special.digamma(a + b + ux)
    d_a = (psi_ab - psi_abx)[ix] + w4 / a
    d_b = (psi_ab + special.digamma(b + ux) - special.digamma(b) - psi_abx)[ix] - w4 / bx1[ix]
    return ll, (d_r, d_alpha, d_a, d_b)


def gamma_gamma_log_likelihood(p: float, q: float, gamma: float, x, monetary) -> np.ndarray:
    """Per-customer log-likelihood of the mean spend ``monetary`` over ``x`` > 0 transactions."""
    x, m = _arrays(x, monetary)
    return _gg_terms(p, q, gamma, x, m)[0]


def _gg_terms(p, q, gamma, x, m, gradient: bool = False):
    px = p * x
    log_m, log_x, log_gmx = np.log(m), np.log(x), np.log(gamma + m * x)
    ll = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * log_m
        + px * log_x
        - (px + q) * log_gmx
    )
    if not gradient:
        return ll, None
    psi_pxq = special.digamma(px + q)
    d_p = x * (psi_pxq - special.digamma(px) + log_m + log_x - log_gmx)
    d_q = psi_pxq - special.digamma(q) + np.log(gamma) - log_gmx
    d_gamma = q / gamma - (px + q) / (gamma + m * x)
    return ll, (d_p, d_q, d_gamma)


def _compress(weights, *columns: np.ndarray) -> list[np.ndarray]:
    """Identical customers folded into one row with a weight: a big shop's summary has many
    (most one-time buyers differ only by T in whole days), and the fit's cost is per row."""
    w = np.ones(len(columns[0])) if weights is None else np.asarray(weights, dtype=np.float64)
    # One int64 key per row from each column's rank among its distinct values (a structured
    # np.unique(axis=0) sorts 100x slower).
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        values, codes = np.unique(column, return_inverse=True)
        key = key * len(values) + codes.ravel()
    keys, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    if len(keys) == len(key):
        return [*columns, w]
    folded = np.bincount(inverse.ravel(), weights=w, minlength=len(keys))
    return [*(column[first] for column in columns), folded]


def _minimise(objective, start: np.ndarray) -> optimize.OptimizeResult:
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9},
    )
    if not np.isfinite(result.fun):
        raise FitError(f"the fit did not converge ({result.message})")
    if np.abs(result.x).max() > MAX_LOG_PARAMETER:
        # A parameter ran off towards 0 or infinity: the data cannot tell it (every customer
        # alike, say), and any value it stopped at would be arbitrary.
        raise FitError("the data do not determine the model's parameters (too alike or too few)")
    return result


def fit_bgnbd(frequency, recency, T, weights=None) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for customers (x, t_x, T), optionally weighted."""
    x, t_x, T = _arrays(frequency, recency, T)
    _check_rft(x, t_x, T)
    if len(x) < 2 or not (x > 0).any():
        raise FitError("BG/NBD needs at least two customers and some repeat purchases")
    x, t_x, T, w = _compress(weights, x, t_x, T)
    # Times rescaled so the longest observation is 10 units: the optimiser then starts near the
    # answer's scale whatever the unit (days or weeks); alpha is a time scale and is scaled back.
    scale = 10.0 / float(T.max()) if T.max() > 0 else 1.0
    ts, Ts = t_x * scale, T * scale
    total = float(w.sum())
    rows = _Rows(x, ts, Ts)

    def objective(log_params: np.ndarray):
        # A trial step far out overflows: the value is then inf (refused), not a warning.
        with np.errstate(all="ignore"):
            r, alpha, a, b = np.exp(log_params)
            ll, grads = _bgnbd_rows(r, alpha, a, b, rows, gradient=True)
            value = -float(np.dot(w, ll)) / total
            grad = -np.array([float(np.sum(w * g)) for g in grads]) * np.exp(log_params) / total
        if not np.isfinite(value) or not np.isfinite(grad).all():
            return np.inf, np.zeros(4)
        return value, grad

    result = _minimise(objective, np.zeros(4))
    r, alpha, a, b = np.exp(result.x)
    alpha = alpha / scale
    ll = float(w @ bgnbd_log_likelihood(r, alpha, a, b, x, t_x, T))
    return BgNbd(float(r), float(alpha), float(a), float(b), ll, int(total), int(result.nit))


def fit_gamma_gamma(frequency, monetary, weights=None) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters from customers with repeat purchases."""
    x, m = _arrays(frequency, monetary)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = x > 0
    x, m, w = x[keep], m[keep], w[keep]
    if len(x) < 2:
        raise FitError("Gamma-Gamma needs at least two customers with repeat purchases")
    if not np.isfinite(m).all() or (m <= 0).any():
        raise FitError("Gamma-Gamma needs a positive mean spend for every repeat buyer")
    x, m, w = _compress(w, x, m)
    # Money rescaled likewise (gamma is a money scale).
    scale = 10.0 / float(m.max())
    ms = m * scale
    total = float(w.sum())

    def objective(log_params: np.ndarray):
        # A trial step far out overflows: the value is then inf (refused), not a warning.
        with np.errstate(all="ignore"):
            p, q, gamma = np.exp(log_params)
            ll, grads = _gg_terms(p, q, gamma, x, ms, gradient=True)
            value = -float(np.dot(w, ll)) / total
            grad = -np.array([float(np.sum(w * g)) for g in grads]) * np.exp(log_params) / total
        if not np.isfinite(value) or not np.isfinite(grad).all():
            return np.inf, np.zeros(3)
        return value, grad

    result = _minimise(objective, np.zeros(3))
    p, q, gamma = np.exp(result.x)
    gamma = gamma / scale
    ll = float(w @ gamma_gamma_log_likelihood(p, q, gamma, x, m))
    return GammaGamma(float(p), float(q), float(gamma), ll, int(total), int(result.nit))


def p_alive(model: BgNbd, frequency, recency, T) -> np.ndarray:
    """P(the customer is still active | x, t_x, T) (FHL 2008 eq. 2); 1 without repeat purchases."""
    x, t_x, T = _arrays(frequency, recency, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    repeat = x > 0
    log_ratio = np.where(
        repeat,
        np.log(a)
        - np.log(np.where(repeat, b + x - 1, 1.0))
        + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
        -np.inf,
    )
    return np.exp(-np.logaddexp(0.0, log_ratio))


def expected_purchases(model: BgNbd, t: float, frequency, recency, T) -> np.ndarray:
    """Expected purchases in the next ``t`` time units given the history (FHL 2005 eq. 10)."""
    x, t_x, T = _arrays(frequency, recency, T)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    if t <= 0:
        return np.zeros_like(x)
    z = t / (alpha + T + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    power = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t)))
    head = (a + b + x - 1) / (a - 1) * (1 - power * hyp)
    return head * p_alive(model, x, t_x, T)


def expected_purchases_new(model: BgNbd, t) -> np.ndarray:
    """Expected purchases by a new customer in their first ``t`` time units (FHL 2005 eq. 9)."""
    t = np.asarray(t, dtype=np.float64)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    hyp = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
    return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)


def expected_spend(model: GammaGamma, frequency, monetary) -> np.ndarray:
    """Expected mean spend per transaction; the population mean for customers without repeats."""
    x, m = _arrays(frequency, monetary)
    p, q, gamma = model.p, model.q, model.gamma
    if q <= 1:
        raise FitError("Gamma-Gamma with q <= 1 has no finite mean spend")
    population = p * gamma / (q - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = (gamma + m * x) * p / (p * x + q - 1)
    return np.where(x > 0, conditional, population)


def customer_value(
    bgnbd: BgNbd,
    gamma_gamma: GammaGamma,
    frequency,
    recency,
    T,
    monetary,
    *,
    horizon: float = 52.0,
    step: float = 4.0,
    discount_rate: float = 0.0,
) -> np.ndarray:
    """Discounted value of each customer's expected purchases over ``horizon`` time units.

    The horizon is cut into steps of ``step`` units; the purchases expected in step k are valued
    at the expected spend and discounted by (1 + discount_rate) ** k, ``discount_rate`` being per
    step (an annual rate d over 4-week steps is (1 + d) ** (4 / 52) - 1).
    """
    spend = expected_spend(gamma_gamma, frequency, monetary)
    ends = np.arange(step, horizon + step / 2, step)
    before = np.zeros(len(np.atleast_1d(np.asarray(frequency))))
    value = np.zeros_like(before)
    for k, end in enumerate(ends, start=1):
        after = expected_purchases(bgnbd, float(min(end, horizon)), frequency, recency, T)
        value += (after - before) * spend / (1 + discount_rate) ** k
        before = after
    return value


@dataclass(frozen=True)
class Summary:
    """Per-customer (x, t_x, T, monetary) arrays in the model's time unit, with the customer ids."""

    customer_ids: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary: np.ndarray


def summarise(customer_ids, days, amounts, *, end_day: int, unit_days: float = 7.0) -> Summary:
    """Turn purchases into the models' summary, the way FHL built the CDNOW tables.

    ``days`` are whole day numbers (e.g. days since an epoch); purchases after ``end_day`` are
    ignored. Purchases on one day by one customer count as one transaction with their amounts
    summed; x = transaction days after the first, t_x and T = days from the first to the last and
    to ``end_day`` over ``unit_days``, monetary = mean amount of the repeat transactions (0
    without repeats: Gamma-Gamma leaves those customers out).
    """
    ids = np.asarray(customer_ids)
    day = np.asarray(days, dtype=np.int64)
    amount = np.asarray(amounts, dtype=np.float64)
    keep = day <= end_day
    ids, day, amount = ids[keep], day[keep], amount[keep]
    if len(ids) == 0:
        empty = np.zeros(0)
        return Summary(ids[:0], empty, empty, empty, empty)
    # One row per (customer, day), ordered by customer then day.
    codes, uniques = _codes(ids)
    key = codes.astype(np.int64) * (int(day.max()) - int(day.min()) + 1) + (day - day.min())
    order = np.argsort(key, kind="stable")
    key, codes, day, amount = key[order], codes[order], day[order], amount[order]
    first_of_key = np.r_[True, key[1:] != key[:-1]]
    starts = np.flatnonzero(first_of_key)
    day_total = np.add.reduceat(amount, starts)
    cust, cust_day = codes[starts], day[starts]
    first_of_cust = np.r_[True, cust[1:] != cust[:-1]]
    cust_starts = np.flatnonzero(first_of_cust)
    n_days = np.diff(np.r_[cust_starts, len(cust)])
    first_day = cust_day[cust_starts]
    last_day = cust_day[np.r_[cust_starts[1:], len(cust)] - 1]
    total = np.add.reduceat(day_total, cust_starts)
    x = (n_days - 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(x > 0, (total - day_total[cust_starts]) / x, 0.0)
    return Summary(
        customer_ids=uniques[cust[cust_starts]],
        frequency=x,
        recency=(last_day - first_day) / unit_days,
        T=(end_day - first_day) / unit_days,
        monetary=monetary,
    )


def _codes(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(ids, return_inverse=True)
    return codes, uniques
