"""Issue 13's "Done when", walked in Chromium.

From the demo shop a customer signs in and opens "My account", changes an address, sets
preferences, turns personalisation off and sees the widget on the shop's page change, opens an
inquiry that a marketer answers in the console (a second browser) and reads the reply,
downloads their data and deletes their account with the code emailed to them; then the marker
search of tests/test_data_rights.py finds neither their marker nor their ids in the SQL file,
Redis, the model directory, the spool or the mail folder. No page breaks its
Content-Security-Policy or reports a script error on the way.

The customer is one the trained model knows (tests/test_serving.py's shop), so the widget shows
them personal recommendations until they turn personalisation off.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import uuid
from pathlib import Path

import pytest

from accounts.mailer import Mailer, MailSettings
from accounts.staff import create_staff
from demo.load import DEMO_SITE_NAME
from recommender import forget
from recommender.serving import PERSONALISATION_OFF
from tests.browser.conftest import Watch
from tests.conftest import drain, make_event
from tests.portal_helpers import add_customer
from tests.test_data_rights import file_hits, redis_dump, sql_hits
from tests.test_serving import Served, trained  # noqa: F401 (trained: a fixture)
from tracking.sites import create_site

pytestmark = pytest.mark.browser

READY = "[data-ecrm-recs][data-placement=home][data-ecrm-state=ready]"
PASSWORD = "a long enough password"
CODE = re.compile(r"\b(\d{6})\b")
# Every violation of every page, reported to the test as it happens (an init script runs
# before the page's own scripts and is not subject to its policy).
REPORT_VIOLATIONS = """
document.addEventListener('securitypolicyviolation',
  e => window.__cspReport(location.pathname + ': ' + e.violatedDirective + ' '
                          + (e.blockedURI || 'inline')));
"""


class Customer:
    """The demo shop's customer: a unique marker in their traits, email and events."""

    def __init__(self, user_id: str):
        tag = uuid.uuid4().hex[:12]
        self.user_id = user_id
        self.marker = f"walkmarker{tag}"  # lower case: it is part of the email address too
        self.email = f"{self.marker}@example.test"
        self.anonymous_id = f"walk-anon-{tag}"

    def events(self, items: list[str]) -> list[dict]:
        """Views by an anonymous id, the shop server's identify stitching it, views as the user."""
        ids = {"userId": self.user_id, "anonymousId": self.anonymous_id}
        found = [
            make_event(anonymousId=self.anonymous_id, properties={"product_id": item})
            for item in items[:3]
        ]
        found.append(
            {
                "type": "identify",
                "messageId": str(uuid.uuid4()),
                **ids,
                "traits": {"email": self.email, "name": f"Walker {self.marker}"},
            }
        )
        found += [
            make_event(**ids, properties={"product_id": item, "note": self.marker})
            for item in items[3:6]
        ]
        return found


def emailed_code(mail_dir: Path, to: str) -> str:
    """The code in the newest email the mailer wrote to ``to`` (as the customer reads it)."""
    found = []
    for path in mail_dir.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == to:
            found.append((int(path.stem), message.get_content()))
    assert found, f"no email to {to} in {mail_dir}"
    return CODE.search(max(found)[1]).group(1)


def widget(page, origin: str) -> tuple[dict, list[str]]:
    """Open the shop's home page: the API's answer to the widget, and the titles it drew."""
    page.goto("about:blank")  # no answer to an earlier page's widget can be taken for this one
    with page.expect_response(lambda r: "/v1/recommendations?" in r.url) as answer:
        page.goto(f"{origin}/demo/")
    body = answer.value.json()
    page.wait_for_selector(READY)
    return body, page.locator(f"{READY} .ecrm-title").all_inner_texts()


def test_a_shopper_walks_the_portal_and_leaves_nothing_behind(
    shop,
    browser,
    trained,  # noqa: F811
):
    app = shop.app
    engine = app.extensions["ecrm"].engine
    # The demo shop's site on the collector's origin, serving the trained model.
    site, server_key = create_site(engine, DEMO_SITE_NAME, [shop.collector])
    object.__setattr__(site, "server_key", server_key)
    shop.site = site
    generated, registry = trained
    served = Served(app, app.test_client(), site, generated, registry)
    person = Customer(served.customers(cluster=1)[0])
    add_customer(engine, site.site_id, person.user_id, email=person.email, name=person.marker)
    items = [i["item_id"] for i in generated.items]
    r = served.client.post("/v1/batch", json={"batch": person.events(items)}, auth=(server_key, ""))
    assert r.status_code == 200, r.json
    drain(app)

    violations: list[str] = []
    customer = browser.new_context()
    staff = browser.new_context()
    for ctx in (customer, staff):
        ctx.set_default_timeout(10_000)
        ctx.expose_function("__cspReport", lambda report: violations.append(report))
        ctx.add_init_script(REPORT_VIOLATIONS)
    page = customer.new_page()
    watch = Watch(page)
    shop.pause = lambda seconds: page.wait_for_timeout(seconds * 1000)
    try:
        # Signed in at the shop, the widget shows them personal recommendations.
        page.goto(f"{shop.collector}/demo/signin")
        page.fill("#email", person.email)
        page.click("#signin-submit")
        page.wait_for_url(f"{shop.collector}/demo/")
        page.wait_for_function("localStorage.getItem('ecrm_uid') !== null")
        before, shown_before = widget(page, shop.collector)
        assert before["source"] == "personal", before
        assert shown_before == [i["title"] for i in before["items"]]
        browser_anonymous_id = page.evaluate("localStorage.getItem('ecrm_aid')")
        assert browser_anonymous_id

        # "My account" opens the portal, signed in as them.
        page.click("#my-account")
        page.wait_for_url(f"{shop.collector}/account/")
        assert "/enter/" not in page.url

        # An address, added and then changed.
        page.click("nav.sections a:has-text('Addresses')")
        page.click("a:has-text('Add a shipping address')")
        page.fill("#name", f"Walker {person.marker}")
        page.fill("#line1", "12 Sejong-daero")
        page.fill("#city", "Seoul")
        page.fill("#country", "kr")
        page.click("form.stacked button:has-text('Save')")
        page.wait_for_url("**/account/addresses")
        page.click("li.address a:has-text('Edit')")
        page.fill("#line1", "7 Jong-ro")
        page.click("form.stacked button:has-text('Save')")
        page.wait_for_url("**/account/addresses")
        assert "7 Jong-ro" in page.inner_text("li.address")
        assert "12 Sejong-daero" not in page.inner_text("main")

        # Communication preferences.
        page.click("nav.sections a:has-text('Preferences')")
        page.check("input[name='email:offers']")
        page.uncheck("input[name='sms:order_updates']")
        page.click("form.grid button:has-text('Save my choices')")
        page.wait_for_url("**/account/preferences?saved=1")
        assert page.is_checked("input[name='email:offers']")
        assert "Email: Offers and discounts" in page.inner_text("table.history")

        # Personalisation off: the widget on the shop's page changes.
        page.click("nav.sections a:has-text('Privacy')")
        assert "Personalisation is on" in page.inner_text("#personalisation-state")
        page.click("#personalisation-toggle")
        page.wait_for_url("**/account/privacy?saved=1")
        assert "Personalisation is off" in page.inner_text("#personalisation-state")
        after, shown_after = widget(page, shop.collector)
        assert after["source"] == PERSONALISATION_OFF, after
        popular = [c[0] for c in served.layer.state(site.site_id).popular[: len(after["items"])]]
        assert [i["item_id"] for i in after["items"]] == popular
        assert shown_after == [i["title"] for i in after["items"]]
        assert shown_after != shown_before

        # An inquiry, answered by a marketer in the console, and the reply read in the portal.
        page.click("#my-account")
        page.wait_for_url(f"{shop.collector}/account/")
        page.click("nav.sections a:has-text('Inquiries')")
        page.click("a:has-text('Ask the shop something')")
        page.select_option("#category", "question")
        page.fill("#subject", "Where is my record?")
        page.fill("#body", f"Order for {person.marker} has not arrived.")
        page.click("form.stacked button:has-text('Send')")
        page.wait_for_url("**/account/inquiries/*")
        inquiry_id = int(page.url.rsplit("/", 1)[1].split("#")[0])

        create_staff(engine, "mia@shop.example", "marketer", [site.site_id], password=PASSWORD)
        console = staff.new_page()
        console_watch = Watch(console)
        console.goto(f"{shop.collector}/console/sign-in")
        console.fill("#email", "mia@shop.example")
        console.fill("#password", PASSWORD)
        console.click("main button[type=submit]")
        console.wait_for_url(f"**/console/{site.site_id}/**")
        console.goto(f"{shop.collector}/console/{site.site_id}/inquiries?status=open")
        console.click("#queue a:has-text('Where is my record?')")
        console.wait_for_url(f"**/console/{site.site_id}/inquiries/{inquiry_id}")
        assert person.marker in console.inner_text("#thread")
        console.fill("#reply-body", "It ships today, with our apologies.")
        console.click("#reply button[type=submit]")
        console.wait_for_url(f"**/inquiries/{inquiry_id}#thread")
        assert console.inner_text("#status") == "answered"

        page.reload()
        bodies = page.locator("li.message .body").all_inner_texts()
        assert bodies == [
            f"Order for {person.marker} has not arrived.",
            "It ships today, with our apologies.",
        ]

        # Download my data: one JSON document with their marker and ids (the browser's too,
        # once the ingest worker, which runs beside the app in production, has stored its events).
        drain(app)
        page.click("nav.sections a:has-text('Your data')")
        with page.expect_download() as download:
            page.click("#download-data")
        document = json.loads(Path(download.value.path()).read_text())
        text = json.dumps(document)
        for needle in (person.marker, person.user_id, person.anonymous_id, browser_anonymous_id):
            assert needle in text, needle
        assert set(document["anonymous_ids"]) >= {person.anonymous_id, browser_anonymous_id}
        assert document["tables"]["inquiries"]["rows"][0]["id"] == inquiry_id

        # The mailer (a process of its own in production) writes the reply's email to var/mail;
        # the model knows them: both are places erasure must reach.
        var = Path(app.config["VAR_DIR"])
        assert Mailer(engine, MailSettings.from_config(app.config)).run_once() >= 1
        assert file_hits(var / "mail", [person.marker]), "the reply's .eml names them"
        assert file_hits(var / "models", [person.user_id]), "the model knows them"

        # Delete my account, with the code emailed to them; the receipt names no one.
        page.click("nav.sections a:has-text('Account')")
        page.click("a:has-text('Delete my account')")
        page.click("form.stacked button:has-text('Send the code')")
        page.wait_for_url("**/account/delete/confirm")
        assert Mailer(engine, MailSettings.from_config(app.config)).run_once() == 1
        page.fill("#code", emailed_code(var / "mail", person.email))
        page.click("form.stacked button:has-text('Delete my account')")
        page.wait_for_url("**/account/deleted")
        receipt = page.inner_text("main")
        assert page.inner_text("#receipt-id")
        for needle in (person.marker, person.user_id, person.anonymous_id):
            assert needle not in receipt
        page.goto(f"{shop.collector}/account/")
        assert "/account/sign-in" in page.url

        assert violations == []
        assert not watch.errors and not watch.console, (watch.errors, watch.console)
        assert not console_watch.errors and not console_watch.console, console_watch.console
    finally:
        customer.close()
        staff.close()

    # Nothing of them is left: the SQL file, every Redis key and value, the var folder
    # (the model directory, the spool, the mail folder).
    drain(app)
    needles = [person.marker, person.user_id, person.anonymous_id, browser_anonymous_id]
    assert sql_hits(engine, needles) == []
    dump = redis_dump(app.extensions["ecrm"].redis)
    assert [n for n in needles if any(n.encode() in v for v in dump)] == []
    models = var / "models" / str(site.site_id)
    assert (models / "current").is_dir()
    # The model files are written again without them off the request path: once that is done.
    assert forget.wait_for_rewrites(models, timeout=120) and forget.pending(models) == {}
    assert file_hits(var, needles) == []
