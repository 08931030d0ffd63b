"""Customer value pages: ``/console/<site_id>/value`` (RFM grid, segments over time, VIP Pareto
curve and list, CLV distribution), ``.../value/risk`` (valuable and slipping, prospects) and
``.../value/settings`` (thresholds and VIP rule: marketers change them, viewers read them).

Everything comes from the dated snapshots the refresh writes (analytics.value_reports); one
currency at a time, money never summed across currencies. Each chart has its table and CSV.
"""

from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, url_for
from flask_login import current_user

from accounts import audit
from analytics import rfm, value_reports, value_settings
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import can, site_page
from webapp.console.tables import Chart, Column, Table, kpi, respond

NO_SCORES = "No scores yet: run `flask --app wsgi analytics refresh`."
SEGMENT_NAMES = tuple(rfm.SEGMENT_CELLS)


def currency_choice(snapshot: value_reports.Snapshot, errors: dict[str, str]) -> str:
    """The currency the query string asks for, else the snapshot's first one."""
    wanted = request.args.get("currency", "").upper()
    if wanted and wanted not in snapshot.currencies:
        errors["currency"] = "this site has no scores in that currency"
    return wanted if wanted in snapshot.currencies else snapshot.currencies[0]


def heat_level(customers: int, most: int) -> int:
    """0-5: the cell's shade in the heat map (its number is written in it too)."""
    return 0 if most <= 0 or customers <= 0 else 1 + (4 * customers) // most


def _grid_table(cells: list[dict[str, Any]], currency: str) -> Table:
    return Table(
        "grid",
        f"RFM grid: recency x frequency quintiles ({currency})",
        [
            Column("r_score", "Recency (5 = most recent)", "int"),
            Column("f_score", "Frequency (5 = most orders)", "int"),
            Column("segment", "Segment"),
            Column("customers", "Customers", "int"),
            Column("share", "Share of customers", "pct"),
            Column("revenue", f"Net revenue {currency}", "money"),
        ],
        cells,
        note="Each customer sits in one cell by their recency and frequency quintiles; every cell "
        "belongs to one named segment. Revenue is each customer's net revenue to date.",
    )


def _over_time(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    wide: dict[Any, dict[str, Any]] = {}
    for row in rows:
        into = wide.setdefault(row["day"], {"day": row["day"]})
        into[f"s{SEGMENT_NAMES.index(row['segment'])}"] = row[key]
    return list(wide.values())


def _segment_tables(rows: list[dict[str, Any]], currency: str) -> list[Table]:
    tables = []
    for key, title, kind in (
        ("customers", "Segment sizes over time", "int"),
        ("revenue", f"Segment net revenue over time ({currency})", "money"),
    ):
        columns = [Column(f"s{i}", name, kind) for i, name in enumerate(SEGMENT_NAMES)]
        tables.append(
            Table(
                f"segment_{key}",
                title,
                [Column("day", "Snapshot day", "date"), *columns],
                _over_time(rows, key),
                chart=Chart("line", x="day", series=tuple(c.key for c in columns)),
                note="One row per refresh in the period; '–' is a segment with nobody that day.",
                empty="No snapshot in this period.",
            )
        )
    return tables


@bp.get("/<int:site_id>/value")
@site_page("viewer")
def value(site_id: int):
    """The RFM heat map, segments over time, the VIP Pareto curve and list, and the CLV
    distribution."""
    errors: dict[str, str] = {}
    with clients().engine.connect() as conn:
        snapshot = value_reports.latest(conn, site_id)
        if snapshot is None:
            return render_template("console/value.html", snapshot=None, no_scores=NO_SCORES)
        currency = currency_choice(snapshot, errors)
        cells = value_reports.grid(conn, site_id, snapshot.day, currency)
        over_time = value_reports.segments_over_time(
            conn, site_id, currency, g.period.start, g.period.end
        )
        top = value_reports.pareto(conn, site_id, snapshot.day, currency)
        distribution = value_reports.clv_distribution(conn, site_id, snapshot.day, currency)
        fit = value_reports.run(conn, site_id, snapshot.day, currency)
        ranked_by = value_reports.vip_value(fit)
        vips = value_reports.vips(conn, site_id, snapshot.day, currency, ranked_by)
    most = max(c["customers"] for c in cells)
    for c in cells:
        c["level"] = heat_level(c["customers"], most)
    pareto = Table(
        "pareto",
        f"VIP Pareto curve: share of net revenue from the top customers ({currency})",
        [
            Column("customer_share", "Top share of customers", "pct"),
            Column("revenue_share", "Their share of net revenue", "pct"),
        ],
        top.points,
        chart=Chart("line", x="customer_share", series=("revenue_share",)),
        note="Customers by net revenue to date, largest first; refunds beyond purchases count 0.",
    )
    vip_list = Table(
        "vips",
        f"VIPs: the {value_reports.LIST_ROWS} with the highest "
        f"{value_settings.VIP_BY['clv' if ranked_by == 'clv' else 'money']} ({currency})",
        [
            Column("user_id", "Customer id"),
            Column("segment", "Segment"),
            Column("orders", "Orders", "int"),
            Column("revenue", f"Net revenue {currency}", "money"),
            Column("clv", f"Lifetime value {currency}", "money"),
            Column("p_alive", "P(alive)", "float"),
            Column("last_order_at", "Last order", "date"),
        ],
        vips,
        note=f"{top.vips} customers are VIPs by the VIP rule of this refresh; the list shows the "
        "first of them by what made them VIPs.",
        empty="No VIPs in this snapshot.",
        links={
            "user_id": lambda row: url_for(
                "console.customer", site_id=site_id, user_id=row["user_id"]
            )
        },
    )
    clv_table = Table(
        "clv",
        f"Lifetime value distribution ({currency})",
        [
            Column("low", f"From {currency}", "money"),
            Column("high", f"Below {currency}", "money"),
            Column("customers", "Customers", "int"),
            Column("share", "Share of customers", "pct"),
        ],
        distribution,
        chart=Chart("bar", x="low", series=("customers",)),
        note="Equal bins up to the 99th percentile (the last bin includes it), then everyone "
        "above it ('–': no upper bound).",
        empty=f"No lifetime values in {currency}: {(fit or {}).get('fit_error') or 'no fit'}.",
    )
    segments = _segment_tables(over_time, currency)
    tables = [_grid_table(cells, currency), *segments, pareto, vip_list, clv_table]
    cards = [
        kpi("Customers scored", top.customers, compare=False),
        kpi("VIPs", top.vips, compare=False),
        kpi("The VIPs' share of net revenue", top.vip_revenue_share, kind="pct", compare=False),
    ]
    return respond(
        "console/value.html",
        tables,
        snapshot=snapshot,
        currency=currency,
        errors=errors,
        cells=cells,
        cards=cards,
        fit=fit,
        settings=value_settings.load(clients().engine, site_id),
        vip_by=value_settings.VIP_BY,
    )


@bp.get("/<int:site_id>/value/risk")
@site_page("viewer")
def value_risk(site_id: int):
    """Valuable customers whose P(alive) fell since the last refresh; prospects in the period."""
    errors: dict[str, str] = {}
    with clients().engine.connect() as conn:
        snapshot = value_reports.latest(conn, site_id)
        currency = currency_choice(snapshot, errors) if snapshot else None
        slipping = value_reports.slipping(conn, site_id, snapshot, currency) if snapshot else []
        prospects = value_reports.prospects(conn, site_id, g.period.start, g.period.end)
    customer_link = {
        "user_id": lambda row: url_for("console.customer", site_id=site_id, user_id=row["user_id"])
    }
    tables = [
        Table(
            "slipping",
            f"Valuable and slipping ({currency or 'no scores yet'})",
            [
                Column("user_id", "Customer id"),
                Column("segment", "Segment"),
                Column("clv", f"Lifetime value {currency or ''}".strip(), "money"),
                Column("p_alive_before", "P(alive) before", "float"),
                Column("p_alive", "P(alive) now", "float"),
                Column("change", "Change", "float"),
                Column("churn_risk", "Churn risk", "pct"),
                Column("revenue", "Net revenue", "money"),
                Column("last_order_at", "Last order", "date"),
            ],
            slipping,
            note=f"The {value_reports.LIST_ROWS} customers with the highest lifetime value whose "
            "P(alive) fell since the refresh before; churn risk is 1 - P(alive).",
            empty=NO_SCORES
            if snapshot is None
            else "Nobody valuable is slipping (or there is only one refresh so far).",
            links=customer_link,
        ),
        Table(
            "prospects",
            "Prospects: carts without an order",
            [
                Column("visitor_id", "Visitor id"),
                Column("user_id", "Customer id"),
                Column("sessions", "Sessions with a cart", "int"),
                Column("last_seen_at", "Last seen", "date"),
            ],
            prospects,
            note="Visitors who viewed a product and added one to the cart in a session of the "
            "period, and never ordered (as a customer or anonymously).",
            empty="No prospects in this period.",
        ),
    ]
    return respond(
        "console/value_risk.html", tables, snapshot=snapshot, currency=currency, errors=errors
    )


def _settings_page(site_id: int, form=None, errors=None, status: int = 200, saved=False):
    stored = value_settings.load(clients().engine, site_id)
    page = render_template(
        "console/value_settings.html",
        form=form or value_settings.as_form(stored),
        errors=errors or {},
        vip_by=value_settings.VIP_BY,
        editable=can("marketer"),
        saved=saved,
    )
    return page, status


@bp.get("/<int:site_id>/value/settings")
@site_page("viewer")
def value_settings_page(site_id: int):
    """The site's RFM thresholds and VIP rule; a form for marketers and owners."""
    return _settings_page(site_id, saved=request.args.get("saved") == "1")


@bp.post("/<int:site_id>/value/settings")
@site_page("marketer")
def value_settings_save(site_id: int):
    """Check and store the settings (audited); the next refresh scores with them."""
    form = {name: request.form.get(name, "")[:40] for name in _FIELDS}
    try:
        chosen = value_settings.from_form(form)
    except value_settings.SettingsErrors as e:
        return _settings_page(site_id, form=form, errors=e.errors, status=422)
    staff = current_user.staff
    with clients().engine.begin() as conn:
        before = value_settings.load(conn, site_id)
        value_settings.save(conn, site_id, chosen, by=staff.email)
        audit.record(
            conn,
            "value.settings",
            staff_id=staff.staff_id,
            email=staff.email,
            site_id=site_id,
            detail={"before": before.as_json(), "after": chosen.as_json()},
        )
    return redirect(url_for("console.value_settings_page", site_id=site_id, saved=1), 303)


_FIELDS = (
    *(name for pair in value_settings.PAIRS.values() for name in pair),
    "vip_by",
    "vip_share",
    "horizon_weeks",
    "discount",
)
