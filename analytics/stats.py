"""Lift statistics: intervals, tests, sample-ratio mismatch and power, treatment against holdout.

Pure functions on numbers and numpy arrays. They are vectorised: any argument may be an array,
one experiment per element (or per row, for per-visitor values), so the coverage simulation of
tests/test_lift_stats.py runs the very code the lift report uses. A quantity that is undefined
(no visitors, no conversions, revenue that does not vary) is NaN here, never a warning or an
exception; :func:`finite` turns it into None for JSON. Distributions come from scipy.stats.

Group 1 is always the treatment (personalised), group 2 the holdout (popularity only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
# Sample ratio mismatch is a guardrail (Kohavi, Tang & Xu, "Trustworthy Online Controlled
# Experiments", 2020, ch. 21), flagged in practice at a strict p < 0.001: the check runs on every
# report, every day, so a looser threshold would cry wolf often, while a real mismatch (a bug in
# assignment or logging) grows with traffic and soon gives far smaller p-values.
SRM_ALPHA = 0.001
CAP_PERCENTILE = 99.0


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _floats(*values: Any) -> list[np.ndarray]:
    return [np.asarray(value, dtype=float) for value in values]


def finite(value: Any) -> float | None:
    """A plain float for JSON, or None when the value is NaN or infinite."""
    number = float(value)
    return number if np.isfinite(number) else None


def wilson_interval(successes, n, confidence: float = CONFIDENCE):
    """Wilson's score interval (low, high) for the proportion successes / n (Wilson 1927)."""
    x, n = _floats(successes, n)
    z2 = _z(confidence) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        centre = (x + z2 / 2) / (n + z2)
        half = np.sqrt(z2 * (n * p * (1 - p) + z2 / 4)) / (n + z2)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def newcombe_difference(x1, n1, x2, n2, confidence: float = CONFIDENCE):
    """p1 - p2 with Newcombe's hybrid score interval: (difference, low, high).

    Method 10 of Newcombe, "Interval estimation for the difference between independent
    proportions: comparison of eleven methods", Stat Med 17:873-890 (1998): each bound combines
    the distances from each proportion to its own Wilson bounds.
    """
    x1, n1, x2, n2 = _floats(x1, n1, x2, n2)
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = x1 / n1, x2 / n2
    difference = p1 - p2
    low = difference - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return difference, low, high


def two_proportion_p_value(x1, n1, x2, n2):
    """Two-sided p-value of the pooled two-proportion z-test of p1 = p2."""
    x1, n1, x2, n2 = _floats(x1, n1, x2, n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = (x1 / n1 - x2 / n2) / se
    # No conversion at all, or conversions only: nothing to test (0 / 0 gives NaN, not 1).
    z = np.where(se > 0, z, np.nan)
    return 2 * stats.norm.sf(np.abs(z))


def conversion_lift(x1, n1, x2, n2, confidence: float = CONFIDENCE):
    """Relative lift p1 / p2 - 1 with the delta-method interval of log(p1 / p2): (lift, low, high).

    Var(log p) ~ (1 - p) / (n p) = (1 - p) / x (Katz et al., Biometrics 34:469, 1978). The
    interval is asymmetric and never below -100%; it needs a conversion in each group. The plain
    ratio overstates the lift by about (1 - p2) / x2 (a point and more with 60 conversions in the
    holdout), so the ratio and its interval are divided by 1 + (1 - p2) / x2, the second-order
    delta-method bias; the planted-effect simulation checks the result is unbiased.
    """
    x1, n1, x2, n2 = _floats(x1, n1, x2, n2)
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = x1 / n1, x2 / n2
        # E[p1 / p2] ~ (p1 / p2) (1 + cv^2 of p2): divided out so the estimate is unbiased.
        ratio = p1 / p2 / (1 + (1 - p2) / x2)
        se = np.sqrt((1 - p1) / x1 + (1 - p2) / x2)
    ratio = np.where((x1 > 0) & (x2 > 0), ratio, np.nan)
    return ratio - 1, ratio * np.exp(-z * se) - 1, ratio * np.exp(z * se) - 1


def pooled_cap(treatment, holdout, percentile: float = CAP_PERCENTILE):
    """Cap per-visitor values at a percentile of both groups pooled: (treatment, holdout, cap).

    Values lie along the last axis (rows are experiments). The cap is pooled so that both groups
    go through the same transformation, chosen blind to the group: with no effect the capped
    samples still share one distribution and the test keeps its level; with an effect on the
    number of buyers, capping both at one value keeps the relative lift. A cap per group would
    depend on the outcome being compared: a group that truly spends more would be cut at a
    higher value and each group's cap would jump with its own few outliers.
    """
    treatment, holdout = _floats(treatment, holdout)
    pooled = np.concatenate([treatment, holdout], axis=-1)
    cap = np.percentile(pooled, percentile, axis=-1, keepdims=True)
    return np.minimum(treatment, cap), np.minimum(holdout, cap), cap[..., 0]


def capped_moments(treatment, holdout, percentile: float = CAP_PERCENTILE):
    """Means and sample variances of both groups' capped values: (m1, v1, m2, v2, cap).

    Values lie along the last axis; each group needs at least two.
    """
    capped1, capped2, cap = pooled_cap(treatment, holdout, percentile)
    moments = [(c.mean(axis=-1), c.var(axis=-1, ddof=1)) for c in (capped1, capped2)]
    return *moments[0], *moments[1], cap


def welch_test(mean1, var1, n1, mean2, var2, n2, confidence: float = CONFIDENCE):
    """Welch's unequal-variance t-test of mean1 - mean2: (difference, low, high, t, df, p).

    var1 and var2 are sample variances (ddof 1); df by Welch-Satterthwaite.
    """
    mean1, var1, n1, mean2, var2, n2 = _floats(mean1, var1, n1, mean2, var2, n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        s1, s2 = var1 / n1, var2 / n2
        se = np.sqrt(s1 + s2)
        difference = mean1 - mean2
        t = np.where(se > 0, difference / se, np.nan)
        df = (s1 + s2) ** 2 / (s1**2 / (n1 - 1) + s2**2 / (n2 - 1))
    p = 2 * stats.t.sf(np.abs(t), df)
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return difference, difference - half, difference + half, t, df, p


def mean_lift(mean1, var1, n1, mean2, var2, n2, confidence: float = CONFIDENCE):
    """Relative lift mean1 / mean2 - 1 with its delta-method interval: (lift, low, high).

    Var(m1 / m2) ~ Var(m1) / mu2^2 + mu1^2 Var(m2) / mu2^4 for independent means (Deng, Knoblich
    & Lu, "Applying the delta method in metric analytics", KDD 2018); needs mean2 > 0. As for
    :func:`conversion_lift`, the ratio is divided by 1 + Var(m2) / m2^2, its second-order bias.
    """
    mean1, var1, n1, mean2, var2, n2 = _floats(mean1, var1, n1, mean2, var2, n2)
    z = _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        # E[m1 / m2] ~ (mu1 / mu2) (1 + cv^2 of m2): divided out so the estimate is unbiased.
        ratio = np.where(mean2 > 0, mean1 / mean2 / (1 + var2 / n2 / mean2**2), np.nan)
        se = np.sqrt(var1 / n1 / mean2**2 + mean1**2 * var2 / n2 / mean2**4)
    se = np.where(se > 0, se, np.nan)
    return ratio - 1, ratio - 1 - z * se, ratio - 1 + z * se


def sample_ratio_mismatch(n_treatment, n_holdout, holdout_share: float):
    """Chi-square goodness of fit of (treatment, holdout) visitors to the configured share: p.

    A p-value below :data:`SRM_ALPHA` means the split is not what the assignment promises.
    """
    n1, n2 = _floats(n_treatment, n_holdout)
    total = n1 + n2
    with np.errstate(divide="ignore", invalid="ignore"):
        expected1, expected2 = total * (1 - holdout_share), total * holdout_share
        chi2 = (n1 - expected1) ** 2 / expected1 + (n2 - expected2) ** 2 / expected2
    chi2 = np.where((total > 0) & (0 < holdout_share) & (holdout_share < 1), chi2, np.nan)
    return stats.chi2.sf(chi2, 1)


def _zs(alpha: float, power: float) -> tuple[float, float]:
    return float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))


def visitors_needed_conversion(
    baseline, holdout_share: float, lift: float = 0.05, alpha: float = 0.05, power: float = 0.8
):
    """Visitors (treatment, holdout) for the z-test to detect a relative conversion lift.

    Fleiss, Levin & Paik, "Statistical Methods for Rates and Proportions" (3rd ed.), ch. 4, for
    groups in the ratio the configured holdout share gives (k treatment visitors per holdout
    visitor), without continuity correction; baseline is the holdout's conversion rate.
    """
    z_a, z_b = _zs(alpha, power)
    (p2,) = _floats(baseline)
    p1 = p2 * (1 + lift)
    if not 0 < holdout_share < 1:
        return np.nan, np.nan
    k = (1 - holdout_share) / holdout_share
    pooled = (p2 + k * p1) / (1 + k)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = z_a * np.sqrt(pooled * (1 - pooled) * (1 + 1 / k)) + z_b * np.sqrt(
            p2 * (1 - p2) + p1 * (1 - p1) / k
        )
        n2 = np.where((p2 > 0) & (p1 < 1), spread**2 / (p1 - p2) ** 2, np.nan)
    return k * n2, n2


def visitors_needed_mean(
    mean2, var1, var2, holdout_share: float, lift: float = 0.05, alpha=0.05, power=0.8
):
    """Visitors (treatment, holdout) for Welch's test to detect a relative lift of the mean.

    The normal approximation n2 = (z_a + z_b)^2 (var2 + var1 / k) / (lift mean2)^2 with the
    observed variances, k treatment visitors per holdout visitor.
    """
    z_a, z_b = _zs(alpha, power)
    mean2, var1, var2 = _floats(mean2, var1, var2)
    if not 0 < holdout_share < 1:
        return np.nan, np.nan
    k = (1 - holdout_share) / holdout_share
    with np.errstate(divide="ignore", invalid="ignore"):
        n2 = (z_a + z_b) ** 2 * (var2 + var1 / k) / (lift * mean2) ** 2
    n2 = np.where((mean2 > 0) & (var1 + var2 > 0), n2, np.nan)
    return k * n2, n2


def more_visitors(needed: tuple[Any, Any], have: tuple[int, int]) -> tuple[int, int] | None:
    """Visitors still missing per group (treatment, holdout), or None when needs are unknown."""
    if any(finite(n) is None for n in needed):
        return None
    return tuple(max(0, int(np.ceil(float(n))) - h) for n, h in zip(needed, have, strict=True))


def about(n: int) -> str:
    """A visitor count rounded up to two significant figures, with thousands separators."""
    step = 10 ** max(0, len(str(n)) - 2)
    return f"{-(-n // step) * step:,}"


def percent(value: float) -> str:
    """A relative lift as a signed percentage with one decimal."""
    return f"{value * 100:+.1f}%"


def p_text(p: float) -> str:
    """A p-value as reports print it."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def metric_verdict(
    metric: str,
    estimate: dict[str, Any],
    more: tuple[int, int] | None,
    reason: str | None,
    alpha: float = 1 - CONFIDENCE,
) -> tuple[str, str]:
    """(code, sentence) for one metric's lift: lift, drop, no_difference or not_enough_data.

    ``estimate`` holds ``lift``, ``lift_ci`` and ``p_value`` (None when undefined); ``more``
    the visitors still needed per group (treatment, holdout) for 80% power at a 5% lift;
    ``reason`` why there is no estimate, when there is none.
    """
    lift, interval, p = estimate["lift"], estimate["lift_ci"], estimate["p_value"]
    if reason or lift is None or interval is None or p is None:
        return "not_enough_data", f"not enough data yet: {reason or 'no estimate'}"
    figures = f"95% CI {percent(interval[0])} to {percent(interval[1])}, {p_text(p)}"
    if p < alpha:
        code, verb = ("lift", "lift") if lift > 0 else ("drop", "lower")
        size = percent(abs(lift)).lstrip("+")
        return code, f"recommendations {verb} {metric} by {size} ({figures})"
    if more is not None and any(more):
        more_treatment, more_holdout = more
        if about(more_treatment) == about(more_holdout):
            missing = f"about {about(more_treatment)} more visitors per group"
        elif not more_treatment:
            missing = f"about {about(more_holdout)} more visitors in the holdout"
        elif not more_holdout:
            missing = f"about {about(more_treatment)} more visitors in treatment"
        else:
            missing = (
                f"about {about(more_holdout)} more visitors in the holdout "
                f"and {about(more_treatment)} in treatment"
            )
        return "not_enough_data", (
            f"not enough data yet: {missing} to detect a 5% lift with 80% power "
            f"({metric} {percent(lift)}, {figures})"
        )
    enough = ", with enough visitors to detect a 5% lift" if more is not None else ""
    return (
        "no_difference",
        f"no significant difference in {metric} ({percent(lift)}, {figures}){enough}",
    )
