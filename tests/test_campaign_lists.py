"""The console's side of trigger actions: the Triggers form's actions (errors beside the fields,
nothing saved), re-enabling a rule, and the Campaign lists pages (sizes, members paged, the
consented members' CSV, audited)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
import sqlalchemy as sa

from accounts import audit, preferences, trigger_actions
from accounts.webhooks import set_endpoint
from analytics import campaign_lists, trigger_checks, triggers
from analytics.trigger_schema import campaign_lists as lists_table
from analytics.trigger_schema import trigger_rules
from tests.conftest import count
from tests.staff_helpers import csrf_token, sign_in
from tests.test_trigger_actions import PUBLIC_URL, Receiver
from tests.test_triggers import NOW, _two_snapshots
from tracking.schema import customers
from tracking.sites import create_site

RULES = "/console/{}/value/triggers"


def _marketer(app, site, role: str = "marketer"):
    client = app.test_client()
    sign_in(client, app, f"{role}@staff.example", {site.site_id: role})
    return client


def _new_rule(client, site_id: int, **fields):
    path = RULES.format(site_id)
    form = {
        "csrf_token": csrf_token(client, path),
        "name": "Welcome back",
        "kind": "segment",
        "segment": "Champions",
        "actions_shown": "1",
        **fields,
    }
    return client.post(path, data=form)


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({}, "actions", "Choose what the rule does"),  # both boxes left empty
        ({"actions": "sms"}, "actions", "Unknown action sms"),
        ({"actions": "list", "list_name": ""}, "list_name", "Enter the campaign list"),
        ({"actions": "list", "list_name": "L" * 101}, "list_name", "longer than 100"),
        ({"actions": "webhook", "webhook_url": "ftp://8.8.8.8/x"}, "webhook_url", "https://"),
        ({"actions": "webhook", "webhook_url": "http://127.0.0.1/"}, "webhook_url", "loopback"),
        ({"actions": "webhook", "webhook_url": "http://10.0.0.1/"}, "webhook_url", "private"),
        (
            {"actions": "webhook", "webhook_url": "https://u:p@8.8.8.8/"},
            "webhook_url",
            "user name or password",
        ),
    ],
)
def test_bad_actions_on_the_page_show_the_error_beside_the_field(
    app, db, site, fields, field, words
):
    set_endpoint(db, site.site_id, PUBLIC_URL)
    client = _marketer(app, site, "owner" if "webhook_url" in fields else "marketer")
    answer = _new_rule(client, site.site_id, **fields)
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert f'<span class="error" id="{field}-error">' in page and words in page
    assert 'value="Welcome back"' in page  # what was typed stays
    assert count(db, trigger_rules) == 0 and count(db, lists_table) == 0
    assert not [e for e in audit.entries(db, [site.site_id]) if e.action == "trigger.created"]


def test_only_an_owner_gives_a_rule_its_own_url(app, db, site):
    # Rule webhooks carry customer ids: a marketer cannot send them somewhere of their choosing.
    set_endpoint(db, site.site_id, PUBLIC_URL)
    client = _marketer(app, site)
    form_page = client.get(RULES.format(site.site_id)).get_data(as_text=True)
    assert 'id="webhook_url"' not in form_page and 'id="webhook-url-note"' in form_page
    answer = _new_rule(client, site.site_id, actions="webhook", webhook_url=PUBLIC_URL)
    assert answer.status_code == 403
    page = answer.get_data(as_text=True)
    assert '<span class="error" id="webhook_url-error">' in page and "Only an owner" in page
    assert count(db, trigger_rules) == 0
    owner = _marketer(app, site, "owner")
    assert 'id="webhook_url"' in owner.get(RULES.format(site.site_id)).get_data(as_text=True)
    saved = _new_rule(owner, site.site_id, actions="webhook", webhook_url=PUBLIC_URL)
    assert saved.status_code == 303 and count(db, trigger_rules) == 1


def test_the_page_saves_a_rule_with_both_actions_and_a_loopback_url_when_allowed(app, db, site):
    receiver = Receiver()
    try:
        set_endpoint(db, site.site_id, PUBLIC_URL, allow_private=True)
        client = _marketer(app, site, "owner")
        fields = {"webhook_url": receiver.url, "list_name": "Comeback"}
        answer = client.post(
            RULES.format(site.site_id),
            data={
                "csrf_token": csrf_token(client, RULES.format(site.site_id)),
                "name": "Both",
                "kind": "segment",
                "segment": "Champions",
                "actions_shown": "1",
                "actions": ["webhook", "list"],
                **fields,
            },
        )
        assert answer.status_code == 303, answer.get_data(as_text=True)
    finally:
        receiver.close()
    with db.connect() as conn:
        [rule] = triggers.rules(conn, site.site_id)
    assert rule.webhook_url == receiver.url and rule.list_name == "Comeback"
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "add to the list Comeback" in page
    [entry] = [e for e in audit.entries(db, [site.site_id]) if e.action == "trigger.created"]
    assert entry.detail["actions"] == [f"webhook to {receiver.url}", "add to the list Comeback"]


def test_a_form_without_action_fields_keeps_the_sites_webhook(app, db, site):
    client = _marketer(app, site)
    path = RULES.format(site.site_id)
    form = {"csrf_token": csrf_token(client, path), "name": "Old form", "kind": "segment"}
    assert client.post(path, data={**form, "segment": "At Risk"}).status_code == 303
    with db.connect() as conn:
        [rule] = triggers.rules(conn, site.site_id)
    assert rule.webhook and rule.webhook_url is None and rule.list_id is None


def test_a_marketer_re_enables_a_disabled_rule_audited_and_a_viewer_cannot(app, db, site):
    with db.begin() as conn:
        rule = triggers.create_rule(
            conn, site.site_id, {"name": "r", "kind": "segment", "segment": "Champions"}
        )
        triggers.disable_rule(conn, site.site_id, rule.rule_id)
    path = RULES.format(site.site_id)
    viewer = _marketer(app, site, "viewer")
    assert "Enable" not in viewer.get(path).get_data(as_text=True)
    token = csrf_token(viewer, path)
    refused = viewer.post(f"{path}/{rule.rule_id}/enable", data={"csrf_token": token})
    assert refused.status_code == 403
    with db.connect() as conn:
        assert triggers.get_rule(conn, site.site_id, rule.rule_id).enabled is False
    client = _marketer(app, site)
    assert "Enable</button>" in client.get(path).get_data(as_text=True)
    token = csrf_token(client, path)
    assert (
        client.post(f"{path}/{rule.rule_id}/enable", data={"csrf_token": token}).status_code == 303
    )
    with db.connect() as conn:
        again = triggers.get_rule(conn, site.site_id, rule.rule_id)
    assert again.enabled
    [entry] = [e for e in audit.entries(db, [site.site_id]) if e.action == "trigger.enabled"]
    assert entry.email == "marketer@staff.example" and entry.detail["rule_id"] == rule.rule_id
    # Enabled again, it fires.
    _two_snapshots(db, site.site_id)
    assert trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW) == 2
    missing = client.post(f"{path}/999999/enable", data={"csrf_token": token})
    assert missing.status_code == 404


# -- the Campaign lists pages -----------------------------------------------------------------


def _filled_list(db, site_id: int, users: list[str]) -> int:
    with db.begin() as conn:
        rule = trigger_actions.create_rule(
            conn,
            site_id,
            {
                "name": "Fill",
                "kind": "segment",
                "segment": "Champions",
                "actions": ["list"],
                "list_name": "Spring",
            },
        )
        for n, user in enumerate(users):
            campaign_lists.add(
                conn, site_id, rule.list_id, user, rule.rule_id, NOW + timedelta(minutes=n)
            )
    return rule.list_id


def test_the_lists_page_shows_sizes_and_pages_the_members(app, db, site):
    users = [f"u{n:03d}" for n in range(campaign_lists.PAGE_SIZE + 5)]
    list_id = _filled_list(db, site.site_id, users)
    client = _marketer(app, site, "viewer")
    page = client.get(f"/console/{site.site_id}/value/lists").get_data(as_text=True)
    assert 'aria-current="page">Campaign lists</a>' in page  # in the navigation
    row = page.split(f'id="list-{list_id}"')[1].split("</tr>")[0]
    assert "Spring" in row and f">{len(users)}<" in row
    first = client.get(f"/console/{site.site_id}/value/lists/{list_id}").get_data(as_text=True)
    assert "u000" in first and "u049" in first and "u050" not in first
    assert 'id="next-page"' in first and "Fill" in first  # the rule that added them
    assert "Export CSV" not in first  # viewers read
    second = client.get(f"/console/{site.site_id}/value/lists/{list_id}?after=u049")
    text = second.get_data(as_text=True)
    assert "u050" in text and "u054" in text and "u049" not in text
    assert 'id="next-page"' not in text and 'id="first-page"' in text
    token = csrf_token(client, f"/console/{site.site_id}/value/lists")
    answer = client.post(
        f"/console/{site.site_id}/value/lists/{list_id}/export",
        data={"csrf_token": token, "channel": "email"},
    )
    assert answer.status_code == 403


def test_another_sites_list_is_not_found(app, db, site):
    other, _ = create_site(db, "Other", ["https://other.example"])
    list_id = _filled_list(db, other.site_id, ["x"])
    client = _marketer(app, site)
    assert client.get(f"/console/{site.site_id}/value/lists/{list_id}").status_code == 404
    token = csrf_token(client, f"/console/{site.site_id}/value/lists")
    answer = client.post(
        f"/console/{site.site_id}/value/lists/{list_id}/export",
        data={"csrf_token": token, "channel": "email", "topic": "offers"},
    )
    assert answer.status_code == 404


def test_the_export_holds_those_who_consented_with_their_address_and_is_audited(app, db, site):
    list_id = _filled_list(db, site.site_id, ["a", "b", "c", "=d"])
    with db.begin() as conn:
        for user, granted in (("a", True), ("b", False), ("=d", True)):
            preferences.set_preferences(
                conn, site.site_id, user, {"email:offers": granted}, source="api", wording="w"
            )
        conn.execute(
            sa.insert(customers),
            [
                {
                    "site_id": site.site_id,
                    "user_id": "a",
                    "traits": {"email": "a@example.com"},
                    "first_seen_at": NOW,
                    "last_seen_at": NOW,
                },
            ],
        )
    client = _marketer(app, site)
    path = f"/console/{site.site_id}/value/lists/{list_id}"
    answer = client.post(
        f"{path}/export",
        data={"csrf_token": csrf_token(client, path), "channel": "email", "topic": "offers"},
    )
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0] == ["user_id", "email", "added_at", "rule"]
    # b withdrew, c never chose (offers default to no); =d is written so no sheet runs it.
    assert [r[:2] for r in rows[1:]] == [["'=d", ""], ["a", "a@example.com"]]
    assert rows[2][2] == NOW.isoformat().replace("+00:00", "Z") and rows[2][3] == "Fill"
    [entry] = [e for e in audit.entries(db, [site.site_id]) if e.action == "campaign_list.export"]
    assert entry.email == "marketer@staff.example"
    assert entry.detail == {
        "list_id": list_id,
        "list": "Spring",
        "channel": "email",
        "topic": "offers",
        "members": 4,
        "exported": 2,
    }


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"channel": "fax", "topic": "offers"}, "channel", "be one of email"),
        ({"channel": "email", "topic": "Offers!"}, "topic", "ower-case letters"),
        ({"channel": "email", "topic": "weather"}, "topic", "his site has no topic weather"),
    ],
)
def test_bad_export_input_shows_the_error_beside_the_field(app, db, site, fields, field, words):
    list_id = _filled_list(db, site.site_id, ["a"])
    client = _marketer(app, site)
    path = f"/console/{site.site_id}/value/lists/{list_id}"
    answer = client.post(f"{path}/export", data={"csrf_token": csrf_token(client, path), **fields})
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert f'<span class="error" id="{field}-error">' in page and words in page
    assert not [e for e in audit.entries(db, [site.site_id]) if e.action == "campaign_list.export"]
