"""Acting as staff in tests: a signed-in viewer, marketer or owner, and a form's CSRF token."""

from __future__ import annotations

import re

from accounts.staff import create_staff, find_staff, grant
from tracking.sites import digest
from webapp.staff_auth import StaffUser

PASSWORD = "correct horse battery staple"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client, path: str) -> str:
    """The CSRF token of the first form on the page at ``path`` (fetched with ``client``)."""
    page = client.get(path).get_data(as_text=True)
    found = CSRF_INPUT.search(page)
    assert found, f"no csrf_token input on {path}"
    return found.group(1)


def make_staff(app, email: str, grants: dict[int, str], password: str = PASSWORD):
    """A staff account (created if new) with ``grants`` (site id -> role) and ``password``."""
    engine = app.extensions["ecrm"].engine
    member = find_staff(engine, email) or create_staff(engine, email, password=password)
    for site_id, role in grants.items():
        member = grant(engine, email, site_id, role)
    return member


def sign_in(client, app, email: str, grants: dict[int, str]) -> StaffUser:
    """Make ``email`` a staff member with ``grants`` and sign ``client`` in through the form."""
    member = make_staff(app, email, grants)
    response = client.post(
        "/console/sign-in",
        data={
            "email": email,
            "password": PASSWORD,
            "csrf_token": csrf_token(client, "/console/sign-in"),
        },
    )
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    with client.session_transaction() as session:
        token = session["_user_id"]
    return StaffUser(member, digest(token), token)
