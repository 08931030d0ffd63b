"""Signing in to the console in Chromium: the one-time link, a password, the console, sign-out.

The pages run under the console's Content-Security-Policy with no violation reported, and the
session cookie is HttpOnly (page scripts cannot read it).
"""

from __future__ import annotations

import pytest

from accounts.links import issue_link
from accounts.staff import create_staff

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def test_a_new_owner_follows_the_link_sets_a_password_and_signs_in_again(shop, context, page):
    engine = shop.app.extensions["ecrm"].engine
    member = create_staff(engine, "ana@shop.example", "owner", [shop.site.site_id])
    token = issue_link(engine, member)
    page.add_init_script(RECORD_VIOLATIONS)

    page.goto(f"{shop.collector}/console/welcome/{token}")
    page.fill("#password", "a long enough password")
    page.fill("#confirm", "a long enough password")
    page.click("button[type=submit]")
    page.wait_for_url(f"**/console/{shop.site.site_id}/**")
    assert "ana@shop.example" in page.inner_text("header.top")
    assert page.evaluate("document.cookie") == ""  # HttpOnly: not readable by scripts
    assert page.evaluate("window.__csp") == []

    page.click("header.top button:has-text('Sign out')")
    page.wait_for_url("**/console/sign-in")
    page.goto(f"{shop.collector}/console/welcome/{token}")
    assert "no longer works" in page.inner_text("main")

    page.goto(f"{shop.collector}/console/{shop.site.site_id}/staff")
    assert "/console/sign-in?next=" in page.url  # goto followed the redirect
    page.fill("#email", "ana@shop.example")
    page.fill("#password", "a long enough password")
    page.click("main button[type=submit]")
    page.wait_for_url(f"**/console/{shop.site.site_id}/staff")
    assert "ana@shop.example" in page.inner_text("main")
    assert page.evaluate("window.__csp") == []
