"""The models page: versions, rollback (who may, CSRF, audit, serving), 'train now', inspector."""

from __future__ import annotations

import base64
import csv
import io
import json

import pytest

from accounts import audit
from recommender.registry import ModelRegistry
from recommender.train_jobs import TrainJobs
from tests.models_helpers import HOSTILE, buyers, install_versions, stock
from tests.staff_helpers import csrf_token, sign_in
from tracking.sites import create_site
from webapp.train_cli import run_requested_job


@pytest.fixture(scope="module")
def trained(model_versions):
    """(shop, registry with three promoted versions, their names oldest first), trained once."""
    return model_versions


class Shop:
    """A test app's site holding the trained versions (and, when stocked, the shop's data)."""

    def __init__(self, app, trained):
        self.app = app
        self.shop, source, self.versions = trained
        self.site, self.server_key = create_site(self.engine, "Models shop", [])
        self.registry = ModelRegistry(install_versions(app, self.site.site_id, source))
        self.url = f"/console/{self.site.site_id}/models"

    @property
    def engine(self):
        return self.app.extensions["ecrm"].engine

    def stock(self, title_of: dict[str, str] | None = None) -> None:
        """Store the shop's catalogue (titles changed as asked) and events in the app's store."""
        stock(self.engine, self.site.site_id, self.shop, title_of)

    def buyer(self, nth: int = 0) -> str:
        """The nth customer with orders."""
        return buyers(self.shop)[nth]

    def api_version(self, client, user_id: str) -> str:
        token = base64.b64encode(f"{self.server_key}:".encode()).decode()
        response = client.get(
            "/v1/recommendations",
            query_string={"user_id": user_id},
            headers={"Authorization": f"Basic {token}"},
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()["model_version"]


@pytest.fixture
def shop(app, trained):
    return Shop(app, trained)


def model_actions(shop) -> list:
    """The audit log's model entries of the shop, newest first."""
    entries = audit.entries(shop.engine, [shop.site.site_id])
    return [e for e in entries if e.action.startswith("model.")]


def as_role(app, client, shop, role: str):
    return sign_in(client, app, f"{role}@shop.example", {shop.site.site_id: role})


def test_the_page_lists_every_version_with_its_figures_and_the_current_one(app, client, shop):
    as_role(app, client, shop, "viewer")
    page = client.get(shop.url)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert all(v in text for v in shop.versions)
    assert f"Serving model <strong>{shop.versions[-1]}</strong>" in text
    assert "Roll back" not in text and "Train now</button>" not in text  # viewers read only
    rows = list(csv.DictReader(io.StringIO(client.get(shop.url + "?csv=versions").text)))
    assert [r["Version"] for r in rows] == shop.versions[::-1]
    assert [r["Status"] for r in rows] == ["current", "", ""]
    sidecar = json.loads((shop.registry.root / shop.versions[-1] / "train.json").read_text())
    newest = rows[0]
    assert int(newest["Customers"]) == sidecar["counts"]["customers"]
    assert int(newest["Interactions"]) == sidecar["counts"]["interactions"]
    metrics = sidecar["validation"]
    assert float(newest["nDCG@10"]) == pytest.approx(metrics["metrics"]["ndcg@10"], abs=1e-6)
    assert float(newest["Popularity nDCG@10"]) == pytest.approx(
        metrics["popularity"]["ndcg@10"], abs=1e-6
    )
    assert newest["Data from (UTC)"].startswith("2026-10-01") and newest["Model"].startswith("als")
    assert float(newest["Training time (s)"]) > 0 and newest["First promoted (UTC)"] != "never"
    assert 'class="chart-data"' in text  # nDCG against popularity, drawn from the same rows


def test_a_marketer_rolls_back_and_serving_answers_from_the_chosen_version(app, client, shop):
    marketer = as_role(app, client, shop, "marketer")
    newest, chosen = shop.versions[-1], shop.versions[0]
    customer = shop.buyer()
    assert shop.api_version(client, customer) == newest
    token = csrf_token(client, shop.url)
    response = client.post(
        shop.url + "/rollback", data={"csrf_token": token, "version": chosen, "confirm": "yes"}
    )
    assert response.status_code == 303
    assert shop.registry.current() == chosen
    # This process switched at once: a customer with nothing cached gets the chosen version.
    # (One already answered gets their cached answer once while it is recomputed, as after any
    # promotion: stale while revalidating, tests/test_serving.py.)
    assert app.extensions["ecrm_serving"].state(shop.site.site_id).version == chosen
    assert shop.api_version(client, shop.buyer(1)) == chosen
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Model {chosen} is current again" in page
    [entry] = model_actions(shop)
    assert (entry.action, entry.staff_id, entry.detail) == (
        "model.rollback",
        marketer.staff_id,
        {"from": newest, "to": chosen},
    )


@pytest.mark.parametrize(
    "form, field",
    [
        ({"version": "nope", "confirm": "yes"}, "version"),
        ({"version": "CURRENT", "confirm": "yes"}, "version"),
        ({"version": "OLDEST"}, "confirm"),
    ],
)
def test_a_bad_rollback_form_comes_back_with_the_error_beside_the_field(
    app, client, shop, form, field
):
    as_role(app, client, shop, "owner")
    names = {"CURRENT": shop.versions[-1], "OLDEST": shop.versions[0]}
    form = {k: names.get(v, v) for k, v in form.items()}
    token = csrf_token(client, shop.url)
    response = client.post(shop.url + "/rollback", data={"csrf_token": token, **form})
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert shop.registry.current() == shop.versions[-1]
    assert model_actions(shop) == []


def test_a_viewer_may_not_roll_back_or_train_and_other_sites_staff_see_nothing(app, client, shop):
    as_role(app, client, shop, "viewer")
    token = csrf_token(client, shop.url + "/inspect")
    rollback = {"csrf_token": token, "version": shop.versions[0], "confirm": "yes"}
    assert client.post(shop.url + "/rollback", data=rollback).status_code == 403
    assert client.post(shop.url + "/train", data={"csrf_token": token}).status_code == 403
    assert shop.registry.current() == shop.versions[-1]
    assert TrainJobs(app.extensions["ecrm"].redis).active(shop.site.site_id) is None
    other, _ = create_site(shop.engine, "Other shop", [])
    stranger = app.test_client()
    sign_in(stranger, app, "owner@other.example", {other.site_id: "owner"})
    for path in (shop.url, shop.url + "/inspect?customer=x"):
        assert stranger.get(path).status_code == 404
    signed_out = app.test_client()
    assert signed_out.get(shop.url).status_code == 302


@pytest.mark.parametrize("token", ["missing", "forged"])
def test_rollback_and_train_refuse_a_post_without_its_csrf_token(app, client, shop, token):
    as_role(app, client, shop, "owner")
    extra = {} if token == "missing" else {"csrf_token": "forged"}
    for path, form in (
        ("/rollback", {"version": shop.versions[0], "confirm": "yes"}),
        ("/train", {}),
    ):
        response = client.post(shop.url + path, data={**form, **extra})
        assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert shop.registry.current() == shop.versions[-1]
    assert TrainJobs(app.extensions["ecrm"].redis).active(shop.site.site_id) is None
    assert model_actions(shop) == []


def test_train_now_is_queued_run_by_the_trainer_and_followed_by_the_page(app, client, shop):
    shop.stock()
    marketer = as_role(app, client, shop, "marketer")
    token = csrf_token(client, shop.url)
    response = client.post(shop.url + "/train", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith("#train")
    page = client.get(shop.url).get_data(as_text=True)
    job_url = f"{shop.url}/jobs/"
    assert f'data-poll="{job_url}' in page and "<strong data-job-state>queued" in page
    job_id = page.split(f'data-poll="{job_url}', 1)[1].split('"', 1)[0]
    queued = client.get(job_url + job_id).get_json()
    assert queued["state"] == "queued" and queued["progress"] == 0
    assert queued["trainer_listening"] is False

    # A second click shows the job already waiting; only the first is audited.
    again = client.post(shop.url + "/train", data={"csrf_token": token})
    assert again.status_code == 303
    assert f"{job_url}{job_id}" in client.get(shop.url).get_data(as_text=True)
    trains = [
        e for e in audit.entries(shop.engine, [shop.site.site_id]) if e.action == "model.train"
    ]
    assert [(e.staff_id, e.detail["job"]) for e in trains] == [(marketer.staff_id, job_id)]

    with app.app_context():
        run_requested_job(0.0)  # what the trainer process does between its runs
    done = client.get(job_url + job_id).get_json()
    assert done["state"] == "done" and done["progress"] == 1.0
    assert done["version"] == shop.registry.current() and done["version"] not in shop.versions
    assert done["trainer_listening"] is True
    page = client.get(shop.url).get_data(as_text=True)
    assert "<strong data-job-state>done" in page and "data-poll=" not in page  # finished: no poll
    assert f"Serving model <strong>{done['version']}</strong>" in page

    other, _ = create_site(shop.engine, "Other shop", [])
    theirs = app.test_client()
    sign_in(theirs, app, "marketer@other.example", {other.site_id: "marketer"})
    assert theirs.get(f"/console/{other.site_id}/models/jobs/{job_id}").status_code == 404
    assert theirs.get(job_url + job_id).status_code == 404  # not their site
    assert client.get(job_url + "no-such-job").status_code == 404


def test_the_inspector_shows_events_recommendations_and_neighbours(app, client, shop):
    first_item = shop.shop.items[0]["item_id"]
    shop.stock({first_item: HOSTILE})
    as_role(app, client, shop, "viewer")
    customer = shop.buyer()
    response = client.get(shop.url + "/inspect", query_string={"customer": customer})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "<strong data-source>personal</strong>" in text
    assert f"model {shop.versions[-1]}" in text
    assert HOSTILE not in text  # escaped wherever it shows

    def table(name):
        raw = client.get(
            shop.url + "/inspect", query_string={"customer": customer, "csv": name}
        ).text
        return list(csv.DictReader(io.StringIO(raw)))

    recommended = table("recommendations")
    token = base64.b64encode(f"{shop.server_key}:".encode()).decode()
    api = client.get(
        "/v1/recommendations",
        query_string={"user_id": customer},
        headers={"Authorization": f"Basic {token}"},
    ).get_json()
    # The same answer as the API: items, order and reasons.
    assert [(r["Item"], r["Reason"]) for r in recommended] == [
        (i["item_id"], i["reason"]) for i in api["items"]
    ]
    events = table("events")
    assert len(events) == 30 and events[0]["When (UTC)"] >= events[-1]["When (UTC)"]
    assert all(e["As"] == "customer" or e["As"].startswith("anonymous ") for e in events)
    similar = table("similar")
    assert 1 <= len(similar) <= 5 and customer not in [s["Customer"] for s in similar]
    assert all(float(s["Similarity"]) > 0 for s in similar)
    assert any(s["Bought (newest first)"] != "nothing yet" for s in similar)
    titles = {i["title"] for i in shop.shop.items} | {HOSTILE}
    bought = [b.rsplit(" ×", 1)[0] for s in similar for b in s["Bought (newest first)"].split("; ")]
    assert set(bought) - {"nothing yet"} <= titles


@pytest.mark.parametrize(
    "customer, status, message",
    [
        ("nobody-here", 404, "has no customer with this id"),
        ("x" * 300, 422, "at most 255 characters"),
    ],
)
def test_the_inspector_answers_a_bad_customer_id_beside_the_field(
    app, client, shop, customer, status, message
):
    as_role(app, client, shop, "viewer")
    response = client.get(shop.url + "/inspect", query_string={"customer": customer})
    assert response.status_code == status
    text = response.get_data(as_text=True)
    assert 'id="customer-error"' in text and message in text
    assert client.get(shop.url + "/inspect").status_code == 200  # the empty form
