"""The Triggers page: ``/console/<site_id>/value/triggers`` lists the site's behaviour-change
rules and their latest firings; marketers and owners create, disable and re-enable rules, viewers
read.

Rules and their evaluation live in analytics.triggers; a rule that fires sends a signed
``trigger.fired`` webhook (to its own URL, or the site's endpoint set on the owner's Webhooks
page) and/or adds the customer to a campaign list (accounts.trigger_actions). Creating, disabling
and re-enabling are audited.
"""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask_login import current_user

from accounts import audit, trigger_actions
from accounts.webhook_delivery import delivery_states
from accounts.webhooks import get_endpoint
from analytics import campaign_lists, rfm, triggers
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
    "webhook_url",
    "list_name",
)


OWNER_ONLY = (
    "Only an owner can send a rule's webhooks to a URL of its own; leave it blank to use the "
    "site's endpoint."
)


def _page(site_id: int, form=None, errors=None, status: int = 200):
    engine = clients().engine
    with engine.connect() as conn:
        rules = triggers.rules(conn, site_id)
        fired = triggers.fired_counts(conn, site_id)
        recent = triggers.recent_firings(conn, site_id)
        lists = campaign_lists.lists(conn, site_id)
    endpoint = get_endpoint(engine, site_id)
    # Marketers do not see the owner's Webhooks page: each firing's delivery state is shown here.
    states = delivery_states(
        engine, site_id, [f["delivery_id"] for f in recent if f["delivery_id"]]
    )
    page = render_template(
        "console/triggers.html",
        rules=rules,
        fired=fired,
        recent=recent,
        states=states,
        kinds=triggers.KINDS,
        actions=triggers.ACTIONS,
        lists=lists,
        segments=tuple(rfm.SEGMENT_CELLS),
        form=form or _blank(),
        errors=errors or {},
        editable=can("marketer"),
        owner=can("owner"),
        webhook_ready=endpoint is not None and endpoint.enabled,
        saved=request.args.get("saved"),
    )
    return page, status


def _blank() -> dict:
    cooldown = str(triggers.DEFAULT_COOLDOWN_HOURS)
    return {"kind": "segment", "cooldown_hours": cooldown, "actions": ["webhook"]}


def _form() -> dict:
    form = {name: request.form.get(name, "")[:2100] for name in FIELDS}
    if "actions_shown" in request.form:  # the page's checkboxes: none ticked is an answer too
        form["actions"] = [a[:40] for a in request.form.getlist("actions")[:5]]
    return form


@bp.get("/<int:site_id>/value/triggers")
@site_page("viewer")
def value_triggers(site_id: int):
    """The rules, what each fired, and (for marketers) the form for a new one."""
    return _page(site_id)


@bp.post("/<int:site_id>/value/triggers")
@site_page("marketer")
def value_triggers_create(site_id: int):
    """Check and save a new rule (audited); the form again with the errors when it is wrong."""
    form = _form()
    staff = current_user.staff
    if form["webhook_url"].strip() and not can("owner"):
        # The signed bodies name customers: where they may go is the owner's choice, as the
        # site's endpoint is (the Webhooks page is the owner's too).
        errors = {"webhook_url": OWNER_ONLY}
        return _page(site_id, form=form, errors=errors, status=403)
    try:
        with clients().engine.begin() as conn:
            rule = trigger_actions.create_rule(conn, site_id, form, created_by=staff.email)
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
                    "actions": rule.describe_actions(),
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
    return _switch(site_id, rule_id, enabled=False)


@bp.post("/<int:site_id>/value/triggers/<int:rule_id>/enable")
@site_page("marketer")
def value_triggers_enable(site_id: int, rule_id: int):
    """Let a disabled rule fire again; audited."""
    return _switch(site_id, rule_id, enabled=True)


def _switch(site_id: int, rule_id: int, enabled: bool):
    staff = current_user.staff
    change = triggers.enable_rule if enabled else triggers.disable_rule
    with clients().engine.begin() as conn:
        rule = change(conn, site_id, rule_id)
        if rule is None:
            abort(404)
        audit.record(
            conn,
            "trigger.enabled" if enabled else "trigger.disabled",
            staff_id=staff.staff_id,
            email=staff.email,
            site_id=site_id,
            detail={"rule_id": rule.rule_id, "name": rule.name},
        )
    return redirect(url_for("console.value_triggers", site_id=site_id), 303)
