"""Customer segments: ``/console/<site_id>/segments`` (the saved ones with their live counts, and
the builder: "Count" shows the members of the form as it stands, "Save" stores it),
``.../segments/<id>`` (one segment: its form, members, exports) and ``.../segments/<id>/export``
(a CSV of the consenting members, a control share held back and recorded, audited).

Viewers read and count; marketers and owners save and export.
"""

from __future__ import annotations

from typing import Any

from flask import Response, abort, redirect, render_template, request, url_for
from flask_login import current_user

from accounts import preferences, segment_exports, segment_report, segments
from accounts.segment_members import Page, count, page
from analytics import rfm
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import can, site_page
from webapp.console.tables import Column, Table, csv_response, respond

# The form fields typed as text: every field of a definition but the segment names (boxes).
TEXT_FIELDS = tuple(f for f in segments.FIELDS if f != "segments")
SHOWN_MEMBERS = 50


def _form() -> dict[str, Any]:
    """The builder's fields as typed (each cut to a sane length)."""
    form: dict[str, Any] = {name: request.values.get(name, "")[:500] for name in TEXT_FIELDS}
    form["name"] = request.values.get("name", "")[:200]
    form["segments"] = [s for s in request.values.getlist("segments") if s][:20]
    return form


def _trait_value(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def traits_from_text(text: str) -> dict[str, Any]:
    """``plan=gold; age=30..50`` -> ``{"plan": "gold", "age": {"min": 30, "max": 50}}``."""
    traits: dict[str, Any] = {}
    for part in text.replace("\n", ";").split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise segments.SegmentError("traits", f"{part.strip()!r}: write name=value")
        low, dots, high = value.partition("..")
        if dots:
            traits[key.strip()] = {"min": low.strip() or None, "max": high.strip() or None}
        else:
            traits[key.strip()] = _trait_value(value)
    return traits


def traits_as_text(traits: dict[str, Any]) -> str:
    parts = []
    for key, want in traits.items():
        if isinstance(want, dict):
            low = "" if want["min"] is None else f"{want['min']:g}"
            high = "" if want["max"] is None else f"{want['max']:g}"
            parts.append(f"{key}={low}..{high}")
        else:
            parts.append(f"{key}={str(want).lower() if isinstance(want, bool) else want}")
    return "; ".join(parts)


def definition_from_form(form: dict[str, Any]) -> segments.Definition:
    data = {name: form[name] for name in TEXT_FIELDS if form[name] != ""}
    data["segments"] = form["segments"]
    data["traits"] = traits_from_text(form["traits"])
    return segments.parse(data)


def form_of(segment: segments.Segment) -> dict[str, Any]:
    d = segment.definition.as_json()
    form = {name: "" if d.get(name) is None else d[name] for name in TEXT_FIELDS}
    form["cells"] = ", ".join(d["cells"])
    form["traits"] = traits_as_text(d["traits"])
    form["consent_channel"] = d["consent_channel"] or ""
    form["currency"] = d["currency"] or ""
    for name in TEXT_FIELDS:
        if isinstance(form[name], float):
            form[name] = f"{form[name]:g}"
    form["name"], form["segments"] = segment.name, list(d["segments"])
    return form


def _where(field: str) -> str:
    """The form field an error belongs beside."""
    if field.startswith("traits"):
        return "traits"
    return field if field in (*TEXT_FIELDS, "name", "segments") else "definition"


def _members_table(found: Page) -> Table:
    currency = found.currency or ""
    return Table(
        "members",
        f"Members (the first {SHOWN_MEMBERS}, by user id)",
        [
            Column("user_id", "Customer id"),
            Column("segment", "Segment"),
            Column("r_score", "R", "int"),
            Column("f_score", "F", "int"),
            Column("clv", f"Lifetime value {currency}", "money"),
            Column("p_alive", "P(alive)", "pct"),
        ],
        [m.__dict__ for m in found.members],
        empty="Nobody in the newest snapshot fits this definition.",
    )


def _page(site_id: int, form, errors, status=200, segment=None, found=None, export_form=None):
    with clients().engine.connect() as conn:
        saved = segments.listing(conn, site_id)
        counts = {}
        for s in saved:
            try:
                counts[s.id] = count(conn, site_id, s.definition)
            except segments.SegmentError as e:
                counts[s.id] = e.reason
        history = segment_exports.exports(conn, site_id, segment.id) if segment else []
    page = render_template(
        "console/segments.html",
        saved=saved,
        counts=counts,
        segment=segment,
        form=form,
        errors=errors,
        found=found,
        members_table=_members_table(found) if found and found.day else None,
        history=history,
        export_form=export_form or {"channel": "email", "topic": "offers", "control_share": "10"},
        segment_names=tuple(rfm.SEGMENT_CELLS),
        channels=preferences.CHANNELS,
        editable=can("marketer"),
    )
    return page, status


def _count(site_id: int, form) -> tuple[Page | None, dict[str, str]]:
    """The first members of the form's definition and the count of all of them."""
    try:
        definition = definition_from_form(form)
        with clients().engine.connect() as conn:
            return page(conn, site_id, definition, limit=SHOWN_MEMBERS), {}
    except segments.SegmentError as e:
        return None, {_where(e.field): e.reason}


def _segment_or_404(site_id: int, segment_id: int) -> segments.Segment:
    with clients().engine.connect() as conn:
        try:
            return segments.get(conn, site_id, segment_id)
        except segments.UnknownSegment:
            abort(404, "no such segment on this site")


@bp.get("/<int:site_id>/segments")
@site_page("viewer")
def segments_page(site_id: int):
    """The saved segments, and the builder (with ``count=1``: the form's members now)."""
    form = _form()
    if request.args.get("count") != "1":
        return _page(site_id, form, {})
    found, errors = _count(site_id, form)
    return _page(site_id, form, errors, 422 if errors else 200, found=found)


@bp.get("/<int:site_id>/segments/<int:segment_id>")
@site_page("viewer")
def segment_page(site_id: int, segment_id: int):
    """One saved segment: its definition, members now, and its exports."""
    segment = _segment_or_404(site_id, segment_id)
    if request.args.get("count") == "1":
        form = _form()
        found, errors = _count(site_id, form)
        return _page(site_id, form, errors, 422 if errors else 200, segment, found)
    form = form_of(segment)
    found, errors = _count(site_id, form)
    if request.args.get("csv") == "members" and found is not None and found.day:
        return csv_response(_members_table(found))
    return _page(site_id, form, errors, segment=segment, found=found)


def _save(site_id: int, segment: segments.Segment | None):
    form = _form()
    try:
        definition = definition_from_form(form)
        with clients().engine.begin() as conn:
            saved_id = segments.save(
                conn,
                site_id,
                form["name"],
                definition,
                by=current_user.staff.email,
                segment_id=segment.id if segment else None,
            )
    except segments.SegmentError as e:
        return _page(site_id, form, {_where(e.field): e.reason}, 422, segment)
    return redirect(url_for("console.segment_page", site_id=site_id, segment_id=saved_id), 303)


@bp.post("/<int:site_id>/segments")
@site_page("marketer")
def segment_create(site_id: int):
    """Save the builder's definition under its name."""
    return _save(site_id, None)


@bp.post("/<int:site_id>/segments/<int:segment_id>")
@site_page("marketer")
def segment_update(site_id: int, segment_id: int):
    """Replace a saved segment's name and definition."""
    return _save(site_id, _segment_or_404(site_id, segment_id))


@bp.post("/<int:site_id>/segments/<int:segment_id>/export")
@site_page("marketer")
def segment_export(site_id: int, segment_id: int):
    """Download the consenting members as CSV; the control share is held back and recorded."""
    segment = _segment_or_404(site_id, segment_id)
    chosen = {
        name: request.form.get(name, "")[:40] for name in ("channel", "topic", "control_share")
    }
    staff = current_user.staff
    try:
        share = float(chosen["control_share"] or 0) / 100
    except ValueError:
        share = chosen["control_share"]  # not a number: the check names it
    out = segment_exports.csv_file()
    try:
        with clients().engine.begin() as conn:
            done = segment_exports.export(
                conn,
                site_id,
                segment.id,
                chosen["channel"],
                chosen["topic"] or "offers",
                share,
                by=staff.email,
                staff_id=staff.staff_id,
                out=out,
            )
    except segments.SegmentError as e:
        out.close()
        form = form_of(segment)
        found, _ = _count(site_id, form)
        field = e.field if e.field in ("channel", "topic", "control_share") else "export"
        reason = "a percentage from 0 to 50" if field == "control_share" else e.reason
        errors = {field: reason}
        return _page(site_id, form, errors, 422, segment, found, chosen)
    name = f"segment-{segment.id}-export-{done.id}-{done.channel}.csv"
    return Response(
        segment_exports.csv_chunks(out),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _report_tables(found: dict[str, Any]) -> list[Table]:
    currency = found["currency"]
    groups = Table(
        "groups",
        f"Targets and control from {found['start']:%Y-%m-%d %H:%M} "
        f"to {found['end']:%Y-%m-%d %H:%M} UTC",
        [
            Column("group", "Group"),
            Column("members", "Members", "int"),
            Column("buyers", "Buyers", "int"),
            Column("buyer_rate", "Buyer rate", "pct"),
            Column("buyer_rate_low", "95% low", "pct"),
            Column("buyer_rate_high", "95% high", "pct"),
            Column("orders", "Orders", "int"),
            Column("revenue", f"Net revenue {currency}", "money"),
            Column("revenue_per_member", f"Net revenue per member {currency}", "money"),
        ],
        found["groups"],
        note="Orders in the export's currency under the members' user ids; rates with Wilson "
        "95% intervals.",
    )
    lifts = []
    for key, label in (("buyer_rate", "Buyer rate"), ("revenue_per_member", "Revenue/member")):
        got = found["lift"][key]
        if got is not None:
            lifts.append({"metric": label, **got})
    lift = Table(
        "lift",
        "Targets against control (95% intervals)",
        [
            Column("metric", "Metric"),
            Column("difference", "Difference", "float"),
            Column("difference_low", "Low", "float"),
            Column("difference_high", "High", "float"),
            Column("lift", "Relative lift", "pct"),
            Column("lift_low", "Low", "pct"),
            Column("lift_high", "High", "pct"),
            Column("p_value", "p-value", "float"),
        ],
        lifts,
        note="Buyer rate: Newcombe's interval of the difference, delta-method lift, pooled "
        "two-proportion test. Revenue per member: Welch's test, delta-method lift, uncapped. "
        "'–': not defined (a group without buyers, or fewer than two members).",
        empty="No comparison: the export held back no control.",
    )
    return [groups, lift]


@bp.get("/<int:site_id>/segments/<int:segment_id>/exports/<int:export_id>")
@site_page("viewer")
def segment_export_report(site_id: int, segment_id: int, export_id: int):
    """An export's campaign report: targets against control in the N days after it."""
    segment = _segment_or_404(site_id, segment_id)
    days_text = request.args.get("days", "30")[:10]
    errors: dict[str, str] = {}
    try:
        days = segment_report.check_days(days_text)
    except segments.SegmentError as e:
        errors[e.field], days = e.reason, 30
    with clients().engine.connect() as conn:
        try:
            found = segment_report.report(conn, site_id, segment.id, export_id, days)
        except segment_report.UnknownExport:
            abort(404, "no such export of this segment")
    return respond(
        "console/segment_report.html",
        _report_tables(found),
        segment=segment,
        report=found,
        days=days_text,
        errors=errors,
    ), 422 if errors else 200
