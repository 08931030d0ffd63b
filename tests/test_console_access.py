"""Who may read and change what: every console route and report API call, for every kind of person.

The issue's matrix: {signed out, viewer of site A, marketer of site A, owner of site B} x every
console route (found in the URL map, so a new page is covered the day it is added) and every
``/v1/reports`` and ``/v1/rules`` call. Nobody reads or changes what their role and sites do not
allow, and every state-changing route refuses a request without its CSRF token.
"""

from __future__ import annotations

import re

import pytest
from werkzeug.routing import IntegerConverter

from tests.conftest import ORIGIN
from tests.staff_helpers import csrf_token, sign_in
from tracking.sites import create_site

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# Values for a route's other path parts: ids that do not exist are fine (a 404 is an answer).
SAMPLE_ARGS = {"user_id": "nobody-here", "version": "no-such-version", "job_id": "no-such-job"}
SAMPLE_ANY = "sample"
# Console routes not about one site: the person's own pages and the way in.
PERSONAL = re.compile(r"^/console/(sign-in|sign-out|welcome|account|switch)?")


@pytest.fixture
def two_sites(app, site):
    other, other_key = create_site(app.extensions["ecrm"].engine, "Other shop", [ORIGIN])
    object.__setattr__(other, "server_key", other_key)
    return site, other


def _console_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("console.") and "site_id" in rule.arguments:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def _url(app, rule, site_id: int, number: int) -> str:
    """The route's URL for ``site_id``; other parts sample values, whole numbers ``number``."""
    values = {"site_id": site_id}
    for name in rule.arguments - {"site_id"}:
        if isinstance(rule._converters.get(name), IntegerConverter):
            values[name] = number
        else:
            values[name] = SAMPLE_ARGS.get(name, SAMPLE_ANY)
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **values)


def _needed(app, rule) -> str:
    view = app.view_functions[rule.endpoint]
    needed = getattr(view, "needed_role", None)
    assert needed in ("viewer", "marketer", "owner"), (
        f"{rule.rule} ({rule.endpoint}) is not guarded by webapp.console.access.site_page"
    )
    return needed


RANK = {"viewer": 0, "marketer": 1, "owner": 2}


def test_every_site_route_is_guarded_and_the_matrix_holds(app, two_sites):
    site_a, site_b = two_sites
    people, people_ids = {}, {}
    for name, grants in {
        "viewer of A": {site_a.site_id: "viewer"},
        "marketer of A": {site_a.site_id: "marketer"},
        "owner of B": {site_b.site_id: "owner"},
    }.items():
        client = app.test_client()
        user = sign_in(client, app, f"{name.replace(' ', '-')}@staff.example", grants)
        people[name], people_ids[name] = client, user.staff_id
    # Whole-number ids (a staff member to revoke...) name a real person of site A.
    number = people_ids["viewer of A"]
    signed_out = app.test_client()
    routes = list(_console_rules(app))
    assert len(routes) >= 15, "the console's pages should all be found in the URL map"
    problems = []
    for rule, method in routes:
        needed = _needed(app, rule)
        url = _url(app, rule, site_a.site_id, number)
        # Signed out: sent to sign in (GET) or refused (a form post without a session).
        answer = signed_out.open(url, method=method)
        if method == "GET" and not (
            answer.status_code == 302 and "/console/sign-in" in answer.headers["Location"]
        ):
            problems.append(f"signed out {method} {url}: {answer.status_code}")
        if method in STATE_CHANGING and answer.status_code not in (302, 400):
            problems.append(f"signed out {method} {url}: {answer.status_code}")
        for name, client in people.items():
            data = {}
            if method in STATE_CHANGING:
                # Without the token: refused whoever asks, before anything else is looked at.
                bare = client.open(url, method=method, data={})
                if bare.status_code != 400:
                    problems.append(f"{name} {method} {url} without CSRF: {bare.status_code}")
                data = {"csrf_token": csrf_token(client, "/console/account")}
            answer = client.open(url, method=method, data=data)
            status = answer.status_code
            if name == "owner of B":
                if status != 404:
                    problems.append(f"{name} {method} {url}: {status}, expected 404")
                continue
            role = "viewer" if name.startswith("viewer") else "marketer"
            if RANK[role] < RANK[needed]:
                if status != 403:
                    problems.append(f"{name} {method} {url}: {status}, expected 403")
            elif status >= 500 or status == 403 or status == 401:
                problems.append(f"{name} {method} {url}: {status}")
    assert problems == []


def _api_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/v1/reports", "/v1/rules", "/v1/segments")):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_report_and_rules_api_need_the_server_key(app, two_sites):
    site_a, site_b = two_sites
    client = app.test_client()
    calls = list(_api_rules(app))
    assert len(calls) >= 5, "the four reports and the rules calls should be found"
    query = "?from=2026-11-01&to=2026-11-30"
    problems = []
    for rule, method in calls:
        url = re.sub(r"<[^>]+>", "home", rule.rule) + query
        for label, auth in {
            "no key": None,
            "write key": (site_a.write_key, ""),
            "revoked-looking key": ("sk_not_a_key", ""),
        }.items():
            answer = client.open(url, method=method, auth=auth, json={})
            if answer.status_code != 401:
                problems.append(f"{label}: {method} {url} -> {answer.status_code}")
            elif answer.get_json()["error"]["field"] != "Authorization":
                problems.append(f"{label}: {method} {url} names {answer.get_json()['error']}")
        # Another site's key from a browser page: refused even though the key is valid.
        answer = client.open(
            url,
            method=method,
            auth=(site_b.server_key, ""),
            json={},
            headers={"Sec-Fetch-Site": "cross-site", "Origin": ORIGIN},
        )
        if answer.status_code != 403:
            problems.append(f"server key from a page: {method} {url} -> {answer.status_code}")
    assert problems == []
