"""The models page in Chromium: its chart drawn, 'train now' progress followed, HTML as text."""

from __future__ import annotations

import threading

import pytest

from recommender.inspector import anonymous_ids, recent_events
from recommender.registry import ModelRegistry
from recommender.train_jobs import TrainJobs
from tests.models_helpers import HOSTILE, buyers, install_versions, stock
from tests.staff_helpers import PASSWORD, make_staff
from tracking.catalogue import upsert_items, validate_item
from webapp.train_cli import run_requested_job

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def trained(model_versions):
    return model_versions


def signed_in(page, shop, role: str) -> None:
    email = f"{role}@shop.example"
    make_staff(shop.app, email, {shop.site.site_id: role})
    page.goto(f"{shop.origin}/console/sign-in")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/console/**")


def test_the_models_page_draws_follows_a_training_and_shows_html_as_text(app, shop, page, trained):
    catalogue, source, versions = trained
    engine = app.extensions["ecrm"].engine
    site_id = shop.site.site_id
    registry = ModelRegistry(install_versions(app, site_id, source))
    stock(engine, site_id, catalogue)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    signed_in(page, shop, "marketer")
    base = f"{shop.origin}/console/{site_id}/models"

    page.goto(base)
    page.wait_for_selector("#versions figure.chart[data-drawn]")
    assert page.locator("#versions tbody tr").count() == 3

    # Train now: the job is queued; the page follows each stage without a reload.
    page.click("#train button[type=submit]")
    page.wait_for_selector("#train [data-poll] [data-job-state]:text-is('queued')")
    jobs = TrainJobs(app.extensions["ecrm"].redis)
    job = jobs.take()
    jobs.stage(job.job_id, "fit", "als + item_knn on 103 customers")
    page.wait_for_selector("#train [data-poll-text]:text-matches('^fit: als')")
    assert page.locator("#train progress").evaluate("bar => bar.value") == pytest.approx(0.6)
    jobs.finish(job.job_id, None, "kept the current model: a test said so")
    page.wait_for_selector("#train [data-job-state]:text-is('done')")  # reloaded when it ended
    assert page.locator("#train [data-poll]").count() == 0

    # Again, run by the trainer's own function in a thread, as the trainer process would.
    page.click("#train button[type=submit]")
    page.wait_for_selector("#train [data-poll]")

    def trainer():
        with app.app_context():
            run_requested_job(0.0, timeout=5.0)

    thread = threading.Thread(target=trainer)
    thread.start()
    page.wait_for_selector("#train [data-job-state]:text-is('done')", timeout=60_000)
    thread.join(60)
    newest = registry.current()
    assert newest not in versions
    assert page.locator("main p strong", has_text=newest).count() == 1
    assert page.locator("#versions tbody tr").count() == 4

    # The inspector: an item title holding HTML is shown as text, never run.
    customer = buyers(catalogue)[0]
    with engine.connect() as conn:
        events = recent_events(conn, site_id, customer, anonymous_ids(conn, site_id, customer))
    item_id = next(e["item_id"] for e in events if e["item_id"])
    item = next(i for i in catalogue.items if i["item_id"] == item_id)
    upsert_items(engine, site_id, [validate_item({**item, "title": HOSTILE})])
    page.goto(f"{base}/inspect?customer={customer}")
    page.wait_for_selector("#recommendations")
    assert page.locator("#events td", has_text=HOSTILE).count() >= 1
    assert page.locator("main img").count() == 0
    assert page.locator("[data-source]").inner_text() == "personal"
    assert dialogs == []
