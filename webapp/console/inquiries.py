"""Inquiries in the console: a site's queue, one inquiry's thread, the report.

Viewers read; marketers and owners assign, reply and change the status (each act is audited,
without the text). Customers' text is shown as text: the templates escape it, and the page's
Content-Security-Policy runs no inline script. Domain rules live in :mod:`accounts.inquiries`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import abort, current_app, g, render_template, request, url_for
from flask import redirect as flask_redirect
from flask_login import current_user

from accounts import audit, outbox
from accounts import inquiries as domain
from accounts.inquiries import CATEGORIES, STATUSES, InquiryError
from accounts.portal_schema import portal_sessions
from accounts.staff import staff_of_site
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.tables import Chart, Column, Table, kpi, respond

AGES = (1, 3, 7, 30)  # "opened at least N days ago" filter choices


def _filters(args) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """(queue() keyword arguments, the filters as chosen, errors by field) from the query."""
    chosen = {name: args.get(name, "")[:20] for name in ("status", "category", "age", "before")}
    errors: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    if chosen["status"]:
        if chosen["status"] in STATUSES:
            kwargs["status"] = chosen["status"]
        else:
            errors["status"] = f"Choose one of {', '.join(STATUSES)}."
    if chosen["category"]:
        if chosen["category"] in CATEGORIES:
            kwargs["category"] = chosen["category"]
        else:
            errors["category"] = f"Choose one of {', '.join(CATEGORIES)}."
    if chosen["age"]:
        if chosen["age"].isdigit() and int(chosen["age"]) in AGES:
            kwargs["older_than_days"] = int(chosen["age"])
        else:
            errors["age"] = f"Choose one of {', '.join(map(str, AGES))} days."
    if chosen["before"].isdigit() and len(chosen["before"]) < 19:
        kwargs["before_id"] = int(chosen["before"])
    return kwargs, chosen, errors


def _staff_emails(site_id: int) -> dict[int, str]:
    return {m.staff_id: m.email for m in staff_of_site(clients().engine, site_id)}


@bp.get("/<int:site_id>/inquiries")
@site_page("viewer")
def inquiries(site_id: int):
    """The site's inquiries, newest first, by status, category and age; paged."""
    kwargs, chosen, errors = _filters(request.args)
    with clients().engine.connect() as conn:
        rows = domain.queue(conn, site_id, limit=domain.PAGE + 1, **kwargs)
    more = len(rows) > domain.PAGE
    rows = rows[: domain.PAGE]
    older = None
    if more:
        keep = {k: v for k, v in chosen.items() if v and k != "before" and k not in errors}
        older = url_for("console.inquiries", site_id=site_id, before=rows[-1].id, **keep)
    return render_template(
        "console/inquiries.html",
        rows=rows,
        chosen=chosen,
        errors=errors,
        older=older,
        statuses=STATUSES,
        categories=CATEGORIES,
        ages=AGES,
        staff=_staff_emails(site_id),
    )


def _inquiry_page(site_id: int, inquiry_id: int, status: int = 200, **extra):
    with clients().engine.connect() as conn:
        found = domain.get_inquiry(conn, site_id, inquiry_id)
        if found is None:
            abort(404, "This site has no inquiry with that number.")
        messages = domain.thread(conn, found)
    page = render_template(
        "console/inquiry.html",
        inquiry=found,
        messages=messages,
        staff=_staff_emails(site_id),
        statuses=STATUSES,
        errors=extra.pop("errors", {}),
        form=extra.pop("form", {}),
        max_body=domain.MAX_BODY,
        **extra,
    )
    return page, status


@bp.get("/<int:site_id>/inquiries/<int:inquiry_id>")
@site_page("viewer")
def inquiry(site_id: int, inquiry_id: int):
    """One inquiry: its thread; forms to reply, assign and change the status for marketers."""
    return _inquiry_page(site_id, inquiry_id)


def _audit(site_id: int, action: str, **detail: Any) -> None:
    audit.record(
        clients().engine,
        action,
        staff_id=current_user.staff_id,
        email=current_user.email,
        site_id=site_id,
        detail=detail,
    )


def _back(site_id: int, inquiry_id: int):
    return flask_redirect(
        url_for("console.inquiry", site_id=site_id, inquiry_id=inquiry_id, _anchor="thread"), 303
    )


@bp.post("/<int:site_id>/inquiries/<int:inquiry_id>/reply")
@site_page("marketer")
def inquiry_reply(site_id: int, inquiry_id: int):
    """Reply to the customer (the inquiry becomes answered)."""
    body = request.form.get("body", "")
    try:
        with clients().engine.begin() as conn:
            domain.reply(conn, site_id, inquiry_id, current_user.staff_id, body)
            _queue_reply_email(conn, site_id, inquiry_id, body.strip())
    except InquiryError as e:
        if e.field == "inquiry":
            abort(404)
        # The text is kept in the form unless it is far too long to send back.
        kept = body if len(body) <= domain.MAX_BODY * 2 else ""
        return _inquiry_page(
            site_id, inquiry_id, 422, errors={e.field: e.reason}, form={"body": kept}
        )
    _audit(site_id, "inquiry_replied", inquiry_id=inquiry_id)
    return _back(site_id, inquiry_id)


def _queue_reply_email(conn, site_id: int, inquiry_id: int, text: str) -> None:
    """The reply goes to the customer by email, through the outbox (in the reply's transaction:
    no reply without its email, no email without its reply), in the language of their latest
    portal session; a customer without an email address on file gets none."""
    inquiry = domain.get_inquiry(conn, site_id, inquiry_id)
    locale = conn.execute(
        sa.select(portal_sessions.c.locale)
        .where(portal_sessions.c.site_id == site_id, portal_sessions.c.user_id == inquiry.user_id)
        .order_by(portal_sessions.c.created_at.desc())
        .limit(1)
    ).scalar()
    # Sign-in leads on to the inquiry's page (or straight there when already signed in).
    query = urlencode({"site": site_id, "next": f"/account/inquiries/{inquiry_id}"})
    url = f"{current_app.config['PUBLIC_URL']}/account/sign-in?{query}"
    mail = domain.reply_email(
        conn, inquiry, text, site_name=g.site.name, inquiry_url=url, locale=locale or "en"
    )
    if mail is not None:
        outbox.enqueue_email(conn, site_id=site_id, **mail)


@bp.post("/<int:site_id>/inquiries/<int:inquiry_id>/assign")
@site_page("marketer")
def inquiry_assign(site_id: int, inquiry_id: int):
    """Give the inquiry to a staff member of this site (or to nobody)."""
    chosen = request.form.get("staff_id", "")
    staff = _staff_emails(site_id)
    if chosen == "":
        assignee = None
    elif chosen.isdigit() and len(chosen) < 10 and int(chosen) in staff:
        assignee = int(chosen)
    else:
        return _inquiry_page(
            site_id, inquiry_id, 422, errors={"staff_id": "Choose a staff member of this site."}
        )
    try:
        with clients().engine.begin() as conn:
            domain.assign(conn, site_id, inquiry_id, assignee)
    except InquiryError:
        abort(404)
    _audit(site_id, "inquiry_assigned", inquiry_id=inquiry_id, assignee=staff.get(assignee))
    return _back(site_id, inquiry_id)


@bp.post("/<int:site_id>/inquiries/<int:inquiry_id>/status")
@site_page("marketer")
def inquiry_status(site_id: int, inquiry_id: int):
    """Close the inquiry, set it aside (waiting) or reopen it."""
    status = request.form.get("status", "")
    if status not in STATUSES:
        return _inquiry_page(
            site_id, inquiry_id, 422, errors={"status": f"Choose one of {', '.join(STATUSES)}."}
        )
    try:
        with clients().engine.begin() as conn:
            domain.set_status(conn, site_id, inquiry_id, status)
    except InquiryError:
        abort(404)
    _audit(site_id, "inquiry_status", inquiry_id=inquiry_id, status=status)
    return _back(site_id, inquiry_id)


def report_tables(report: dict[str, Any]) -> list[Table]:
    """Volume and first replies by category, and inquiries opened per day (each with its CSV)."""
    return [
        Table(
            "by_category",
            "Inquiries by category",
            [
                Column("category", "Category"),
                Column("opened", "Opened", "int"),
                Column("previous_opened", "Opened, previous period", "int"),
                Column("replied", "Replied to", "int"),
                Column("median_hours_to_first_reply", "Median hours to first reply", "float"),
            ],
            report["by_category"],
            chart=Chart("bar", x="category", series=("opened", "previous_opened")),
            note="Inquiries opened in the period; hours from opening to the first staff reply.",
        ),
        Table(
            "days",
            "Inquiries opened per day",
            [Column("day", "Day", "date"), *(Column(c, c.capitalize(), "int") for c in CATEGORIES)],
            report["days"] if any(day[c] for day in report["days"] for c in CATEGORIES) else [],
            chart=Chart("bar", x="day", series=CATEGORIES, stacked=True),
        ),
    ]


@bp.get("/<int:site_id>/inquiries/report")
@site_page("viewer")
def inquiry_report(site_id: int):
    """Volume by category and median time to first reply, this period against the previous."""
    period, previous = g.period, g.period.previous()
    with clients().engine.connect() as conn:
        report = domain.inquiry_report(conn, site_id, period.start, period.end)
        before = domain.inquiry_report(conn, site_id, previous.start, previous.end)
    earlier = {row["category"]: row for row in before["by_category"]}
    total, total_before = report["by_category"].pop(), earlier["all"]  # the "all" rows: KPIs
    for row in report["by_category"]:
        row["previous_opened"] = earlier[row["category"]]["opened"]
    cards = [
        kpi("Inquiries opened", total["opened"], total_before["opened"]),
        kpi(
            "Median hours to first reply",
            total["median_hours_to_first_reply"],
            total_before["median_hours_to_first_reply"],
            "float",
        ),
    ]
    return respond("console/inquiry_report.html", report_tables(report), cards=cards)
