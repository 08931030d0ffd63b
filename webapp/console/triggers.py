"""The Triggers page: ``/console/<site_id>/value/triggers`` lists the site's behaviour-change
rules and their latest firings; marketers and owners create and disable rules, viewers read.

Rules and their evaluation live in analytics.triggers; a rule that fires sends the site's signed
``trigger.fired`` webhook (set on the owner's Webhooks page). Creating and disabling are audited.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask_login import current_user

from accounts import audit
from accounts.webhooks import get_endpoint
from analytics import rfm, triggers
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import can, site_page

FIELDS = (
    "name",
    "kind",
    "segment",
    "currency",
    "threshold",
    "visits",
    "views",
    "category",
    "days",
    "cooldown_hours",
)


def _page(site_id: int, form=None, errors=None, status: int = 200):
    engine = clients().engine
    with engine.connect() as conn:
        rules = triggers.rules(conn, site_id)
        fired = triggers.fired_counts(conn, site_id)
        recent = triggers.recent_firings(conn, site_id)
    endpoint = get_endpoint(engine, site_id)
    page = render_template(
        "console/triggers.html",
        rules=rules,
        fired=fired,
        recent=recent,
        kinds=triggers.KINDS,
        segments=tuple(rfm.SEGMENT_CELLS),
        form=form or {"kind": "segment", "cooldown_hours": str(triggers.DEFAULT_COOLDOWN_HOURS)},
        errors=errors or {},
        editable=can("marketer"),
        webhook_ready=endpoint is not None and endpoint.enabled,
        saved=request.args.get("saved"),
    )
    return page, status


@bp.get("/<int:site_id>/value/triggers")
@site_page("viewer")
def value_triggers(site_id: int):
    """The rules, what each fired, and (for marketers) the form for a new one."""
    return _page(site_id)


@bp.post("/<int:site_id>/value/triggers")
@site_page("marketer")
def value_triggers_create(site_id: int):
    """Check and save a new rule (audited); the form again with the errors when it is wrong."""
    form = {name: request.form.get(name, "")[:600] for name in FIELDS}
    staff = current_user.staff
    try:
        with clients().engine.begin() as conn:
            rule = triggers.create_rule(conn, site_id, form, created_by=staff.email)
            audit.record(
                conn,
                "trigger.created",
                staff_id=staff.staff_id,
                email=staff.email,
                site_id=site_id,
                detail={
                    "rule_id": rule.rule_id,
                    "name": rule.name,
                    "kind": rule.kind,
                    "params": rule.params,
                    "cooldown_hours": rule.cooldown_hours,
                },
            )
    except triggers.InvalidTrigger as e:
        reason = e.reason[:1].upper() + e.reason[1:]
        return _page(site_id, form=form, errors={e.field: reason + "."}, status=422)
    return redirect(url_for("console.value_triggers", site_id=site_id, saved=rule.rule_id), 303)


@bp.post("/<int:site_id>/value/triggers/<int:rule_id>/disable")
@site_page("marketer")
def value_triggers_disable(site_id: int, rule_id: int):
    """Stop a rule firing (it stays listed with its firings); audited."""
    staff = current_user.staff
    with clients().engine.begin() as conn:
        rule = triggers.disable_rule(conn, site_id, rule_id)
        if rule is None:
            abort(404)
        audit.record(
            conn,
            "trigger.disabled",
            staff_id=staff.staff_id,
            email=staff.email,
            site_id=site_id,
            detail={"rule_id": rule.rule_id, "name": rule.name},
        )
    return redirect(url_for("console.value_triggers", site_id=site_id), 303)
