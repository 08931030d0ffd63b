"""What a trigger rule does (accounts.trigger_actions): its own webhook URL, checked like the
site's endpoint and delivered signed to a real HTTP receiver without touching the endpoint's
health; adding the customer to a campaign list once; both; re-enabling a disabled rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from accounts import audit, trigger_actions
from accounts.messaging_schema import webhook_deliveries
from accounts.webhooks import SIGNATURE_HEADER, get_endpoint, set_endpoint, verify_signature
from analytics import campaign_lists, trigger_checks, triggers
from analytics.trigger_schema import campaign_list_members, trigger_rules
from analytics.trigger_schema import campaign_lists as lists_table
from tests.conftest import count, drain
from tests.staff_helpers import sign_in
from tests.test_triggers import NOW, _fired, _two_snapshots, _visit
from tests.test_webhooks import Receiver, _deliverer

PUBLIC_URL = "https://8.8.8.8/hooks/ecrm"  # an address literal: no DNS needed to check it


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def other_receiver():
    server = Receiver()
    yield server
    server.close()


def _rule(db, site_id: int, **form):
    form = {"name": "a rule", "kind": "segment", "segment": "Champions", **form}
    with db.begin() as conn:
        return trigger_actions.create_rule(conn, site_id, form)


# -- bad input: an error naming the field, nothing saved --------------------------------------


@pytest.mark.parametrize(
    "form, field, words",
    [
        ({"actions": ["sms"]}, "actions", "unknown action sms"),
        ({"actions": ["webhook", ""]}, "actions", "unknown action (blank)"),
        ({"actions": []}, "actions", "choose what the rule does"),
        ({"actions": ["list"], "list_name": ""}, "list_name", "enter the campaign list"),
        ({"actions": ["list"], "list_name": "   "}, "list_name", "enter the campaign list"),
        ({"actions": ["list"], "list_name": "x" * 101}, "list_name", "longer than 100"),
        ({"actions": ["list"], "list_name": "a\x00b"}, "list_name", "control characters"),
        ({"webhook_url": "ftp://8.8.8.8/hooks"}, "webhook_url", "must start with https://"),
        ({"webhook_url": "http://127.0.0.1/hooks"}, "webhook_url", "a loopback address"),
        ({"webhook_url": "http://10.0.0.1/hooks"}, "webhook_url", "a private address"),
        ({"webhook_url": "http://169.254.169.254/"}, "webhook_url", "a private address"),
        ({"webhook_url": "https://shop:pw@8.8.8.8/x"}, "webhook_url", "user name or password"),
        ({"webhook_url": "https://8.8.8.8/" + "x" * 2000}, "webhook_url", "longer than 2000"),
        (
            {"actions": ["webhook", "list"], "list_name": "ok", "webhook_url": "http://[::1]/"},
            "webhook_url",
            "a loopback address",
        ),
    ],
)
def test_bad_actions_are_refused_naming_the_field_and_nothing_is_saved(
    db, site, form, field, words
):
    set_endpoint(db, site.site_id, PUBLIC_URL)  # the site allows no private address
    with pytest.raises(triggers.InvalidTrigger) as refused:
        _rule(db, site.site_id, **form)
    assert refused.value.field == field and words in refused.value.reason
    assert count(db, trigger_rules) == 0 and count(db, lists_table) == 0


def test_a_rule_url_needs_the_sites_endpoint_whose_secret_signs_it(db, site):
    with pytest.raises(triggers.InvalidTrigger) as refused:
        _rule(db, site.site_id, webhook_url=PUBLIC_URL)
    assert refused.value.field == "webhook_url" and "endpoint first" in refused.value.reason
    # Without accounts' check (analytics alone) a URL is never saved unchecked.
    with db.begin() as conn, pytest.raises(triggers.InvalidTrigger) as unchecked:
        triggers.create_rule(
            conn,
            site.site_id,
            {"name": "r", "kind": "visits", "visits": "2", "days": "3", "webhook_url": PUBLIC_URL},
        )
    assert unchecked.value.field == "webhook_url"
    assert count(db, trigger_rules) == 0


def test_a_loopback_url_is_accepted_when_the_site_allows_private_addresses(db, site, receiver):
    set_endpoint(db, site.site_id, PUBLIC_URL, allow_private=True)
    rule = _rule(db, site.site_id, webhook_url=receiver.url)
    assert rule.webhook and rule.webhook_url == receiver.url and rule.list_id is None
    assert rule.describe_actions() == [f"webhook to {receiver.url}"]


def test_without_action_fields_a_rule_sends_the_sites_webhook_as_before(db, site):
    rule = _rule(db, site.site_id)
    assert rule.webhook and rule.webhook_url is None and rule.list_id is None
    assert rule.describe_actions() == ["webhook to the site endpoint"]


# -- the rule's own URL, to a real receiver -------------------------------------------------------


def test_a_rule_with_its_own_url_delivers_there_signed_with_the_sites_secret(
    db, site, receiver, other_receiver
):
    endpoint = set_endpoint(db, site.site_id, other_receiver.url, allow_private=True)
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, name="Champions to CRM", webhook_url=receiver.url)
    assert trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=NOW) == 2
    assert _deliverer(db).run_once() == 2
    assert other_receiver.requests == []  # the site's endpoint got nothing
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert request["path"] == "/hooks/ecrm?shop=1"
        assert verify_signature(
            endpoint.secret, request["headers"][SIGNATURE_HEADER], request["body"]
        )
        body = json.loads(request["body"])
        assert body["type"] == "trigger.fired" and body["data"]["rule_id"] == rule.rule_id
    with db.connect() as conn:
        rows = conn.execute(sa.select(webhook_deliveries)).all()
    assert {r.target_url for r in rows} == {receiver.url}
    assert {r.status for r in rows} == {"delivered"}


def test_a_failing_rule_url_never_disables_the_sites_endpoint(
    app, db, site, receiver, other_receiver
):
    set_endpoint(db, site.site_id, other_receiver.url, allow_private=True)
    _two_snapshots(db, site.site_id)
    _rule(db, site.site_id, webhook_url=receiver.url)
    receiver.statuses = [500, 500]
    assert trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=NOW) == 2
    deliverer = _deliverer(db, disable_after=1, max_attempts=1)
    assert deliverer.run_once() == 2
    endpoint = get_endpoint(db, site.site_id)
    assert endpoint.enabled and endpoint.consecutive_failures == 0
    with db.connect() as conn:
        statuses = conn.execute(sa.select(webhook_deliveries.c.status)).scalars().all()
    assert statuses == ["failed", "failed"]  # given up after the last attempt, logged
    assert not [e for e in audit.entries(db, [site.site_id]) if e.action == "webhook_disabled"]
    # The marketer, who cannot open the Webhooks page, sees it beside each firing.
    client = app.test_client()
    sign_in(client, app, "marketer@staff.example", {site.site_id: "marketer"})
    page = client.get(f"/console/{site.site_id}/value/triggers").get_data(as_text=True)
    firings = page.split('id="firings"')[1].split("</section>")[0]
    assert firings.count("<td>failed</td>") == 2


def test_a_rule_url_is_delivered_while_the_sites_endpoint_is_disabled(db, site, receiver):
    set_endpoint(db, site.site_id, PUBLIC_URL, allow_private=True)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE webhook_endpoints SET enabled = false"))
    _two_snapshots(db, site.site_id)
    site_rule = _rule(db, site.site_id, name="to the site")
    own_rule = _rule(db, site.site_id, name="own", webhook_url=receiver.url)
    assert trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=NOW) == 4
    assert all(f["delivery_id"] is None for f in _fired(db, site_rule.rule_id))  # not queued
    assert all(f["delivery_id"] is not None for f in _fired(db, own_rule.rule_id))
    assert _deliverer(db).run_once() == 2 and len(receiver.requests) == 2


def test_the_webhooks_page_logs_a_rule_urls_deliveries(app, db, site, receiver):
    set_endpoint(db, site.site_id, PUBLIC_URL, allow_private=True)
    _two_snapshots(db, site.site_id)
    _rule(db, site.site_id, webhook_url=receiver.url)
    trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=NOW)
    _deliverer(db).run_once()
    client = app.test_client()
    sign_in(client, app, "owner@staff.example", {site.site_id: "owner"})
    page = client.get(f"/console/{site.site_id}/webhooks").get_data(as_text=True)
    deliveries = page.split('id="deliveries"')[1].split('id="attempts"')[0]
    attempts = page.split('id="attempts"')[1]
    assert deliveries.count(receiver.url.replace("&", "&amp;")) == 2
    assert attempts.count(receiver.url.replace("&", "&amp;")) == 2


# -- the campaign list ------------------------------------------------------------------------


def _members(db, list_id: int) -> list[dict]:
    with db.connect() as conn:
        query = sa.select(campaign_list_members).where(campaign_list_members.c.list_id == list_id)
        return [dict(r) for r in conn.execute(query.order_by("user_id")).mappings()]


def test_the_list_action_adds_each_customer_once_with_when_and_by_which_rule(db, site):
    set_endpoint(db, site.site_id, PUBLIC_URL)  # a webhook only if the rule asks for one
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, actions=["list"], list_name=" Win-back ", cooldown_hours="48")
    assert not rule.webhook and rule.list_name == "Win-back"
    assert rule.describe_actions() == ["add to the list Win-back"]
    assert trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=NOW) == 2
    first = _members(db, rule.list_id)
    assert [m["user_id"] for m in first] == ["a", "c"]
    assert all(m["rule_id"] == rule.rule_id and m["site_id"] == site.site_id for m in first)
    assert count(db, webhook_deliveries) == 0
    # Inside the cool-down: nothing fires. Past it the rule fires again, the list stays as it was.
    later = NOW + timedelta(hours=47)
    assert trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=later) == 0
    later = NOW + timedelta(hours=49)
    assert trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=later) == 2
    assert _members(db, rule.list_id) == first
    # A second rule naming the same list adds to it, not to a new one.
    again = _rule(db, site.site_id, name="again", actions=["list"], list_name="Win-back")
    assert again.list_id == rule.list_id and count(db, lists_table) == 1


def test_both_actions_add_to_the_list_and_send_the_webhook(db, site, receiver):
    endpoint = set_endpoint(db, site.site_id, receiver.url, allow_private=True)
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, actions=["webhook", "list"], list_name="VIP welcome")
    assert rule.describe_actions() == [
        "webhook to the site endpoint",
        "add to the list VIP welcome",
    ]
    assert trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=NOW) == 2
    assert [m["user_id"] for m in _members(db, rule.list_id)] == ["a", "c"]
    assert _deliverer(db).run_once() == 2
    body = json.loads(receiver.requests[0]["body"])
    assert body["data"]["campaign_list"] == "VIP welcome"
    assert verify_signature(
        endpoint.secret,
        receiver.requests[0]["headers"][SIGNATURE_HEADER],
        receiver.requests[0]["body"],
    )


def test_a_visit_rule_adds_to_its_list_as_events_are_ingested(app, db, site, tracker):
    rule = _rule(
        db, site.site_id, kind="visits", visits="2", days="7", actions=["list"], list_name="Keen"
    )
    start = datetime.now(UTC) - timedelta(days=2)  # two visits, five hours apart
    batch = [_visit("v1", start), _visit("v1", start + timedelta(hours=5))]
    assert tracker.batch(batch, server=True).status_code == 200
    drain(app)
    assert [m["user_id"] for m in _members(db, rule.list_id)] == ["v1"]


def test_erasing_the_customer_removes_their_memberships_and_the_export_holds_them(
    app, client, db, site
):
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, actions=["list"], list_name="Win-back")
    trigger_checks.evaluate_scores(db, site.site_id, trigger_actions.act, now=NOW)
    headers = {"Authorization": f"Bearer {site.server_key}"}
    exported = client.get("/v1/customers/a/export", headers=headers)
    assert exported.status_code == 200 and "campaign_list_members" in exported.get_data(
        as_text=True
    )
    assert client.delete("/v1/customers/a", headers=headers).status_code == 200
    assert [m["user_id"] for m in _members(db, rule.list_id)] == ["c"]
    with db.connect() as conn:
        assert campaign_lists.get_list(conn, site.site_id, rule.list_id).members == 1


def test_migrations_118_119_209_bring_an_existing_store_up_to_date(db, site):
    from tracking.schema import schema_migrations
    from webapp.database import upgrade

    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE campaign_list_members"))
        conn.execute(sa.text("DROP TABLE campaign_lists"))
        for column in ("webhook", "webhook_url", "list_id"):
            conn.execute(sa.text(f"ALTER TABLE trigger_rules DROP COLUMN {column}"))
        conn.execute(sa.text("ALTER TABLE webhook_deliveries DROP COLUMN target_url"))
        conn.execute(
            schema_migrations.delete().where(schema_migrations.c.version.in_([118, 119, 209]))
        )
        conn.execute(  # a rule saved before rules had actions
            sa.text(
                "INSERT INTO trigger_rules (site_id, name, kind, params, cooldown_hours, enabled, "
                "created_at) VALUES (:site, 'old', 'visits', :params, 24, true, :at)"
            ),
            {"site": site.site_id, "params": '{"visits": 2, "days": 3}', "at": NOW},
        )
    assert upgrade(db) == [118, 119, 209]
    assert upgrade(db) == []
    with db.connect() as conn:
        [rule] = triggers.rules(conn, site.site_id)
    assert rule.webhook and rule.webhook_url is None and rule.list_id is None
    assert _rule(db, site.site_id, actions=["list"], list_name="after").list_name == "after"
