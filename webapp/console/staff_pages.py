"""Owners' pages of a site: its staff (grants, open sessions, invite, revoke, disable), audit log.

Everything here needs the ``owner`` role on the site (:func:`site_page`). An owner acts on the
staff of their own site only; disabling an account (which reaches every site it may open) needs
the owner role on each of that account's sites, so an owner of one shop cannot lock out the owner
of another who happens to be a viewer here.
"""

from __future__ import annotations

from flask import abort, current_app, g, redirect, render_template, request, url_for
from flask_login import current_user

from accounts import audit
from accounts.links import issue_link, link_url
from accounts.sessions import end_session, get_session, last_sign_ins, list_sessions
from accounts.staff import (
    ROLES,
    InvalidStaff,
    create_staff,
    disable,
    find_staff,
    get_staff,
    grant,
    revoke,
    staff_of_site,
)
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.staff_auth import session_idle

AUDIT_PAGE = 50


def _staff_page(site_id: int, status: int = 200, **extra):
    engine = clients().engine
    members = staff_of_site(engine, site_id)
    sessions = list_sessions(engine, [m.staff_id for m in members], session_idle())
    by_staff: dict[int, list] = {}
    for s in sessions:
        by_staff.setdefault(s.staff_id, []).append(s)
    page = render_template(
        "console/staff.html",
        members=members,
        sessions=by_staff,
        last_sign_in=last_sign_ins(engine),
        roles=ROLES,
        errors=extra.pop("errors", {}),
        form=extra.pop("form", {}),
        **extra,
    )
    return page, status


def _member_of_site(site_id: int, staff_id: int):
    """The staff member ``staff_id`` when they hold a grant on this site (else 404)."""
    member = get_staff(clients().engine, staff_id)
    if member is None or site_id not in member.grants:
        abort(404)
    return member


@bp.get("/<int:site_id>/staff")
@site_page("owner")
def staff(site_id: int):
    """The site's staff with their roles, last sign-in and open sessions; forms for owners."""
    return _staff_page(site_id)


@bp.post("/<int:site_id>/staff/grant")
@site_page("owner")
def staff_grant(site_id: int):
    """Give an email a role on this site; a new email gets an account and a one-time link."""
    engine = clients().engine
    email, role = request.form.get("email", "").strip(), request.form.get("role", "")
    form, errors = {"email": email, "role": role}, {}
    if role not in ROLES:
        errors["role"] = f"Choose one of {', '.join(ROLES)}."
    member = find_staff(engine, email) if email else None
    if member is not None and member.staff_id == current_user.staff_id:
        errors["email"] = "You cannot change your own role."
    if errors:
        return _staff_page(site_id, 422, errors=errors, form=form)
    actor = current_user.staff
    try:
        if member is None:
            member = create_staff(engine, email, role, [site_id], actor=actor)
            token = issue_link(engine, member, actor=actor)
            url = link_url(current_app.config["PUBLIC_URL"], token)
            return _staff_page(site_id, invited=member.email, invite_link=url)
        grant(engine, member.email, site_id, role, actor=actor)
    except InvalidStaff as e:
        return _staff_page(site_id, 422, errors={"email": str(e).capitalize() + "."}, form=form)
    return redirect(url_for("console.staff", site_id=site_id), 303)


@bp.post("/<int:site_id>/staff/<int:staff_id>/revoke")
@site_page("owner")
def staff_revoke(site_id: int, staff_id: int):
    """Take away a staff member's role on this site."""
    member = _member_of_site(site_id, staff_id)
    if member.staff_id == current_user.staff_id:
        return _staff_page(site_id, 422, errors={"revoke": "You cannot revoke your own role."})
    revoke(clients().engine, member.email, site_id, actor=current_user.staff)
    return redirect(url_for("console.staff", site_id=site_id), 303)


@bp.post("/<int:site_id>/staff/<int:staff_id>/disable")
@site_page("owner")
def staff_disable(site_id: int, staff_id: int):
    """Disable an account: no more sign-ins, every open session ended now."""
    member = _member_of_site(site_id, staff_id)
    mine = current_user.grants
    if member.staff_id == current_user.staff_id:
        problem = "You cannot disable your own account."
    elif any(mine.get(other) != "owner" for other in member.grants):
        problem = (
            f"{member.email} also works on sites you do not own: revoke their role here instead."
        )
    else:
        problem = None
    if problem:
        return _staff_page(site_id, 422, errors={"disable": problem})
    disable(clients().engine, member.email, actor=current_user.staff)
    return redirect(url_for("console.staff", site_id=site_id), 303)


@bp.post("/<int:site_id>/staff/sessions/end")
@site_page("owner")
def staff_end_session(site_id: int):
    """End a session of a staff member of this site: that browser is signed out at once."""
    engine = clients().engine
    found = get_session(engine, request.form.get("session_id", "")[:64])
    if found is None:
        abort(404)
    member = _member_of_site(site_id, found.staff_id)
    if end_session(engine, found.session_id, "ended by an owner"):
        audit.record(
            engine,
            "session_ended",
            staff_id=current_user.staff_id,
            email=current_user.email,
            site_id=site_id,
            detail={"target": member.email},
        )
    return redirect(url_for("console.staff", site_id=site_id), 303)


@bp.get("/<int:site_id>/audit", endpoint="audit")  # the navigation's "console.audit"
@site_page("owner")
def audit_log(site_id: int):
    """The site's audit log and the account-wide entries of its staff, newest first, paged."""
    before = request.args.get("before", "")
    before_id = int(before) if before.isdigit() and len(before) < 19 else None
    rows = audit.entries(clients().engine, [site_id], AUDIT_PAGE + 1, before_id)
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    return render_template(
        "console/audit.html",
        entries=rows,
        older=rows[-1].id if more else None,
        site_names={s.site_id: s.name for s in g.sites},
    )
