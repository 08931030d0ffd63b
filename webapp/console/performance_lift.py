"""The Recommendations page's lift section: analytics.lift's report as tables, CSV and a chart.

The same dict ``GET /v1/reports/lift`` answers, for the page's period and revenue currency; the
holdout share is the app's configured ``HOLDOUT_SHARE``. The standard ranges are served as the
scheduler stored them (analytics.lift_archive) while fresh, with the time they were computed.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from analytics.lift_archive import current_lift
from analytics.periods import Period
from webapp.console.tables import Chart, Column, Table

# Verdicts that say the comparison itself is in doubt or impossible, shown as warnings.
WARNINGS = ("no_holdout", "sample_ratio_mismatch")
CURRENCY = re.compile(r"[A-Za-z]{3}")


def page_lift(
    conn: sa.Connection,
    site_id: int,
    period: Period,
    holdout_share: float,
    asked: str | None,
    max_age: float,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The lift report for the page, and an error by field when ``currency`` was not a code.

    ``max_age``: seconds a stored report of a standard range stays fresh (LIFT_FRESH_SECONDS).
    """
    errors = {}
    if asked and not CURRENCY.fullmatch(asked):
        errors["currency"] = f"{asked[:20]!r} is not a currency code (3 letters, like EUR)"
        asked = None
    report = current_lift(
        conn, site_id, period.start, period.end, holdout_share, asked or None, max_age
    )
    return report, errors


def _low(interval: list[float] | None) -> float | None:
    return interval[0] if interval else None


def _high(interval: list[float] | None) -> float | None:
    return interval[1] if interval else None


def _test_row(measure: str, result: dict[str, Any], treatment: Any, holdout: Any) -> dict:
    return {
        "measure": measure,
        "treatment": treatment,
        "holdout": holdout,
        "difference": result["difference"],
        "difference_low": _low(result["difference_ci"]),
        "difference_high": _high(result["difference_ci"]),
        "lift": result["lift"],
        "lift_low": _low(result["lift_ci"]),
        "lift_high": _high(result["lift_ci"]),
        "p_value": result["p_value"],
        "verdict": result["verdict"],
    }


def lift_tables(lift: dict[str, Any]) -> list[Table]:
    """Groups, the two tests (conversion, revenue per visitor) and the sample-ratio check."""
    currency = lift["currency"] or "no revenue"
    groups = [
        {"group": name, **{k: lift[name][k] for k in lift[name]}}
        for name in ("treatment", "holdout")
    ]
    revenue = lift["revenue"]
    cap = f", capped at {revenue['cap']:,.2f}" if revenue.get("cap") is not None else ""
    tests = [
        _test_row(
            "Conversion rate",
            lift["conversion"],
            lift["treatment"]["conversion_rate"],
            lift["holdout"]["conversion_rate"],
        ),
        _test_row(
            f"Revenue per visitor ({currency}{cap})",
            revenue,
            lift["treatment"]["revenue_per_visitor_capped"],
            lift["holdout"]["revenue_per_visitor_capped"],
        ),
    ]
    ratio = lift["sample_ratio"]
    return [
        Table(
            "lift_groups",
            "Visitors per group",
            [
                Column("group", "Group"),
                Column("visitors", "Visitors", "int"),
                Column("conversions", "Visitors who ordered", "int"),
                Column("conversion_rate", "Conversion rate", "pct"),
                Column("revenue_per_visitor", f"Revenue per visitor ({currency})", "money"),
                Column(
                    "revenue_per_visitor_capped",
                    f"Revenue per visitor, capped ({currency})",
                    "money",
                ),
            ],
            groups if any(g["visitors"] for g in groups) else [],
            chart=Chart("bar", x="group", series=("conversion_rate",)),
            note="A visitor counts once over the period, in the group they were served as; "
            f"{lift['visitors_excluded']:,} visitors whose group changed are left out.",
        ),
        Table(
            "lift_tests",
            "Lift with 95% confidence intervals",
            [
                Column("measure", "Measure"),
                Column("treatment", "Treatment", "float"),
                Column("holdout", "Holdout", "float"),
                Column("difference", "Difference", "float"),
                Column("difference_low", "Difference, 95% CI low", "float"),
                Column("difference_high", "Difference, 95% CI high", "float"),
                Column("lift", "Relative lift", "pct"),
                Column("lift_low", "Lift, 95% CI low", "pct"),
                Column("lift_high", "Lift, 95% CI high", "pct"),
                Column("p_value", "p-value", "float"),
                Column("verdict", "Verdict"),
            ],
            tests,
            note="Conversion: two-proportion z-test, Newcombe's interval for the difference. "
            "Revenue per visitor: Welch's t-test on revenue capped at its 99th percentile; "
            "relative lifts by the delta method.",
        ),
        Table(
            "sample_ratio",
            "Sample ratio check",
            [
                Column("configured", "Configured holdout share", "pct"),
                Column("observed", "Observed holdout share", "pct"),
                Column("p_value", "p-value (chi-square)", "float"),
                Column("mismatch", "Mismatch"),
            ],
            [
                {
                    "configured": lift["holdout_share"],
                    "observed": ratio["observed_holdout_share"],
                    "p_value": ratio["p_value"],
                    "mismatch": "yes" if ratio["mismatch"] else "no",
                }
            ],
            note="A mismatch (p < 0.001) means visitors are not split as configured: find out "
            "why before trusting the lift.",
        ),
    ]


def verdict_class(lift: dict[str, Any]) -> str:
    """The verdict's CSS class: a warning when the comparison itself is in doubt."""
    return "verdict warning" if lift["verdict_code"] in WARNINGS else "verdict"
