"""The Campaign lists pages: ``/console/<site_id>/value/lists`` (the site's lists and their sizes)
and ``.../lists/<list_id>`` (one list's members, paged by user id, and its CSV export).

Trigger rules fill the lists (analytics.campaign_lists); viewers read, marketers and owners
download the members who allow a channel (accounts.campaign_exports: the segment export's
consent rule, audited as ``campaign_list.export``).
"""

from __future__ import annotations

from flask import Response, abort, render_template, request
from flask_login import current_user

from accounts import campaign_exports, preferences
from analytics import campaign_lists
from analytics.campaign_lists import InvalidList
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import can, site_page


@bp.get("/<int:site_id>/value/lists")
@site_page("viewer")
def campaign_lists_page(site_id: int):
    """The site's campaign lists with their member counts."""
    with clients().engine.connect() as conn:
        found = campaign_lists.lists(conn, site_id)
    return render_template("console/campaign_lists.html", lists=found, campaign_list=None)


def _list_page(site_id: int, list_id: int, status: int = 200, errors=None, chosen=None):
    after = request.args.get("after") or None
    after = after[:255] if after else None
    with clients().engine.connect() as conn:
        found = campaign_lists.get_list(conn, site_id, list_id)
        if found is None:
            abort(404, "no such campaign list")
        page = campaign_lists.members(conn, list_id, after, campaign_lists.PAGE_SIZE + 1)
        topics = [t.topic for t in preferences.topics(conn, site_id)]
    more = len(page) > campaign_lists.PAGE_SIZE
    page = page[: campaign_lists.PAGE_SIZE]
    body = render_template(
        "console/campaign_lists.html",
        campaign_list=found,
        members=page,
        after=after,
        next_after=page[-1].user_id if more else None,
        channels=preferences.CHANNELS,
        topics=topics,
        export_form=chosen or {"channel": "email", "topic": "offers"},
        errors=errors or {},
        editable=can("marketer"),
    )
    return body, status


@bp.get("/<int:site_id>/value/lists/<int:list_id>")
@site_page("viewer")
def campaign_list_page(site_id: int, list_id: int):
    """One list: its members by user id (``?after=`` the previous page's last) and the export."""
    return _list_page(site_id, list_id)


@bp.post("/<int:site_id>/value/lists/<int:list_id>/export")
@site_page("marketer")
def campaign_list_export(site_id: int, list_id: int):
    """Download the members who allow the chosen channel and topic as CSV (audited)."""
    chosen = {name: request.form.get(name, "")[:40] for name in ("channel", "topic")}
    staff = current_user.staff
    try:
        with clients().engine.begin() as conn:
            done = campaign_exports.export(
                conn,
                site_id,
                list_id,
                chosen["channel"],
                chosen["topic"] or "offers",
                by=staff.email,
                staff_id=staff.staff_id,
            )
    except InvalidList as e:
        if e.field == "list":
            abort(404, "no such campaign list")
        reason = e.reason[:1].upper() + e.reason[1:]
        return _list_page(site_id, list_id, 422, {e.field: reason + "."}, chosen)
    name = f"campaign-list-{list_id}-{done.channel}-{done.topic}.csv"
    return Response(
        campaign_exports.export_csv(done),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
