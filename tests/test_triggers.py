"""Behaviour-change triggers (analytics.triggers): rules, when they fire, the cool-down, the
signed ``trigger.fired`` webhook to a real HTTP receiver, and the console page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from accounts import audit
from accounts.messaging_schema import webhook_deliveries
from accounts.trigger_actions import send_webhook
from accounts.webhooks import SIGNATURE_HEADER, set_endpoint, verify_signature
from analytics import trigger_checks, triggers
from analytics.trigger_schema import trigger_fired, trigger_rules
from analytics.value_schema import value_scores
from tests.conftest import count, drain, make_event
from tests.staff_helpers import csrf_token, sign_in
from tests.test_webhooks import Receiver, _deliverer
from tests.value_helpers import BEFORE, DAY, score, scored_shop, store_snapshot
from tracking.schema import order_lines, orders
from webapp.scheduler import refresh_customer_value

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def _rule(db, site_id: int, **form):
    with db.begin() as conn:
        return triggers.create_rule(conn, site_id, {"name": "a rule", **form})


def _fired(db, rule_id: int) -> list[dict]:
    with db.connect() as conn:
        query = sa.select(trigger_fired).where(trigger_fired.c.rule_id == rule_id)
        return [dict(r) for r in conn.execute(query.order_by(trigger_fired.c.user_id)).mappings()]


# -- rules and bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form, field, words",
    [
        ({"kind": "segment", "segment": "Big Spenders"}, "segment", "unknown segment"),
        ({"kind": "segment"}, "segment", "unknown segment"),
        ({"kind": "sometimes"}, "kind", "unknown kind"),
        ({"kind": "clv", "currency": "EUR", "threshold": "-1"}, "threshold", "0 or more"),
        ({"kind": "clv", "currency": "EUR", "threshold": "lots"}, "threshold", "a number"),
        ({"kind": "clv", "currency": "EUR", "threshold": "nan"}, "threshold", "0 or more"),
        ({"kind": "clv", "currency": "EURO", "threshold": "5"}, "currency", "three-letter"),
        ({"kind": "visits", "visits": "0", "days": "7"}, "visits", "between 1 and"),
        ({"kind": "visits", "visits": "3", "days": "0"}, "days", "between 1 and"),
        ({"kind": "visits", "visits": "2.5", "days": "7"}, "visits", "whole number"),
        ({"kind": "visits", "visits": "3"}, "days", "enter the number of days"),
        (
            {"kind": "category_views", "category": "Shoes", "views": "0", "days": "7"},
            "views",
            "between 1 and",
        ),
        ({"kind": "category_views", "views": "3", "days": "7"}, "category", "enter the category"),
        (
            {"kind": "visits", "visits": "3", "days": "7", "cooldown_hours": "0"},
            "cooldown_hours",
            "between 1 and",
        ),
        ({"kind": "visits", "visits": "3", "days": "7", "name": " "}, "name", "give the rule"),
    ],
)
def test_bad_rules_are_refused_naming_the_field_and_nothing_is_saved(db, site, form, field, words):
    with pytest.raises(triggers.InvalidTrigger) as refused:
        _rule(db, site.site_id, **form)
    assert refused.value.field == field and words in refused.value.reason
    assert count(db, trigger_rules) == 0


def test_a_rule_keeps_only_its_kinds_fields_and_a_default_cool_down(db, site):
    rule = _rule(db, site.site_id, kind="clv", currency="eur", threshold="250", visits="9")
    assert rule.params == {"currency": "EUR", "threshold": 250.0}
    assert rule.cooldown_hours == triggers.DEFAULT_COOLDOWN_HOURS and rule.enabled
    assert rule.describe() == "lifetime value crosses 250 EUR upward"


# -- score rules, between the two newest snapshots -------------------------------------------------


def _two_snapshots(db, site_id: int) -> None:
    # a: At Risk -> Champions; b: Champions both days; c: new in Champions; d: stays Hibernating.
    store_snapshot(
        db,
        site_id,
        BEFORE,
        "EUR",
        [
            score("a", 2, 4, 50.0, clv=90.0),
            score("b", 5, 5, 500.0, clv=400.0),
            score("d", 1, 1, 10.0, clv=95.0),
        ],
    )
    store_snapshot(
        db,
        site_id,
        DAY,
        "EUR",
        [
            score("a", 5, 5, 120.0, clv=130.0),
            score("b", 5, 5, 520.0, clv=410.0),
            score("c", 5, 5, 300.0, clv=150.0),
            score("d", 1, 1, 10.0, clv=99.0),
        ],
    )


def test_enters_segment_fires_for_those_who_were_elsewhere_or_absent(db, site):
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, kind="segment", segment="Champions")
    assert trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW) == 2
    fired = _fired(db, rule.rule_id)
    assert [f["user_id"] for f in fired] == ["a", "c"]
    assert fired[0]["values"] == {
        "currency": "EUR",
        "day": DAY.isoformat(),
        "day_before": BEFORE.isoformat(),
        "segment": "Champions",
        "segment_before": "At Risk",
    }
    assert fired[1]["values"]["segment_before"] is None


def test_clv_crossing_fires_upward_only_and_in_its_currency(db, site):
    _two_snapshots(db, site.site_id)
    store_snapshot(db, site.site_id, BEFORE, "USD", [score("a", 2, 2, 5.0, clv=10.0)])
    store_snapshot(db, site.site_id, DAY, "USD", [score("a", 2, 2, 500.0, clv=900.0)])
    rule = _rule(db, site.site_id, kind="clv", currency="EUR", threshold="100")
    assert trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW) == 1
    # a crossed (90 -> 130); b was above already; c had no value before; d stayed below; USD not.
    [fired] = _fired(db, rule.rule_id)
    assert fired["user_id"] == "a"
    assert fired["values"]["clv_before"] == 90.0 and fired["values"]["clv"] == 130.0
    assert fired["values"]["threshold"] == 100.0


def test_nothing_fires_with_one_snapshot_or_a_disabled_rule(db, site):
    store_snapshot(db, site.site_id, DAY, "EUR", [score("a", 5, 5, 120.0)])
    rule = _rule(db, site.site_id, kind="segment", segment="Champions")
    assert trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW) == 0
    store_snapshot(db, site.site_id, BEFORE, "EUR", [score("a", 1, 1, 12.0)])
    with db.begin() as conn:
        triggers.disable_rule(conn, site.site_id, rule.rule_id)
    assert trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW) == 0
    assert _fired(db, rule.rule_id) == []


def test_a_rule_fires_once_per_customer_within_its_cool_down(db, site):
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, kind="segment", segment="Champions", cooldown_hours="48")
    assert trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW) == 2
    assert (
        trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW + timedelta(hours=47)) == 0
    )
    assert len(_fired(db, rule.rule_id)) == 2
    # Past the cool-down the same change may fire again (a new window of the log).
    assert (
        trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW + timedelta(hours=49)) == 2
    )
    assert len(_fired(db, rule.rule_id)) == 4


def test_the_fired_log_key_stops_a_second_firing_in_the_same_window(db, site):
    # Two transactions that both found no recent firing: the key lets only one through.
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, kind="segment", segment="Champions")
    firing = triggers.Firing(rule, "a", {"segment": "Champions"})
    window = int(NOW.timestamp() // (rule.cooldown_hours * 3600))
    with db.begin() as conn:
        conn.execute(
            trigger_fired.insert().values(
                rule_id=rule.rule_id,
                user_id="a",
                window=window,
                site_id=site.site_id,
                fired_at=NOW - timedelta(days=400),  # old, so the time check lets it pass
                values={},
            )
        )
    with db.begin() as conn:
        assert triggers.fire(conn, firing, None, NOW) is False


# -- the webhook, to a real receiver ---------------------------------------------------------------


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_a_rules_webhook_reaches_the_receiver_signed_and_not_again_within_the_cool_down(
    db, site, receiver
):
    endpoint = set_endpoint(db, site.site_id, receiver.url, allow_private=True)
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, name="Welcome champions", kind="segment", segment="Champions")
    assert trigger_checks.evaluate_scores(db, site.site_id, send_webhook) == 2
    assert _deliverer(db).run_once() == 2
    assert len(receiver.requests) == 2
    bodies = []
    for request in receiver.requests:
        assert verify_signature(
            endpoint.secret, request["headers"][SIGNATURE_HEADER], request["body"]
        )
        bodies.append(json.loads(request["body"]))
    first = min(bodies, key=lambda b: b["data"]["user_id"])
    assert first["type"] == "trigger.fired"
    assert first["data"] == {
        "rule_id": rule.rule_id,
        "rule_name": "Welcome champions",
        "rule": "enters the segment Champions",
        "kind": "segment",
        "user_id": "a",
        "values": {
            "currency": "EUR",
            "day": DAY.isoformat(),
            "day_before": BEFORE.isoformat(),
            "segment": "Champions",
            "segment_before": "At Risk",
        },
    }
    assert all(f["delivery_id"] is not None for f in _fired(db, rule.rule_id))
    # The next refresh within the cool-down: nothing queued, nothing sent.
    assert trigger_checks.evaluate_scores(db, site.site_id, send_webhook) == 0
    assert _deliverer(db).run_once() == 0
    assert len(receiver.requests) == 2 and count(db, webhook_deliveries) == 2


# -- visit rules, as events are stored -------------------------------------------------------------


def _visit(user_id: str, when: datetime, **fields) -> dict:
    return make_event(
        userId=user_id,
        anonymousId=f"anon-{user_id}",
        timestamp=when.isoformat().replace("+00:00", "Z"),
        **fields,
    )


def test_n_visits_in_d_days_fires_as_the_visit_arrives(app, db, site, tracker):
    rule = _rule(db, site.site_id, kind="visits", visits="3", days="7")
    start = datetime.now(UTC) - timedelta(days=3)
    # Sessions end after 30 minutes without an event: each of these is its own visit.
    first_two = [_visit("v1", start + timedelta(hours=h)) for h in (0, 5)]
    first_two += [_visit("v2", start + timedelta(hours=h)) for h in (0, 5)]
    assert tracker.batch(first_two, server=True).status_code == 200
    drain(app)
    assert _fired(db, rule.rule_id) == []
    third = [_visit("v1", start + timedelta(hours=30))]
    assert tracker.batch(third, server=True).status_code == 200
    drain(app)
    [fired] = _fired(db, rule.rule_id)
    assert fired["user_id"] == "v1" and fired["values"] == {"visits": 3, "days": 7}
    # A fourth visit inside the cool-down fires nothing more.
    assert (
        tracker.batch([_visit("v1", start + timedelta(hours=40))], server=True).status_code == 200
    )
    drain(app)
    assert len(_fired(db, rule.rule_id)) == 1


def test_visits_outside_the_window_do_not_count(app, db, site, tracker):
    rule = _rule(db, site.site_id, kind="visits", visits="2", days="1")
    now = datetime.now(UTC)
    batch = [_visit("v1", now - timedelta(days=5)), _visit("v1", now - timedelta(hours=1))]
    assert tracker.batch(batch, server=True).status_code == 200
    drain(app)
    assert _fired(db, rule.rule_id) == []


def _viewed(user_id: str, when: datetime, category: str) -> dict:
    return _visit(user_id, when, properties={"product_id": "sku-1", "category": category})


def test_viewing_a_category_k_times_without_buying_fires(app, db, site, tracker):
    rule = _rule(db, site.site_id, kind="category_views", category="shoes", views="3", days="7")
    now = datetime.now(UTC) - timedelta(hours=6)
    views = [
        _viewed(u, now + timedelta(minutes=m), "Shoes > Running")
        for u in ("x", "y")
        for m in (1, 2)
    ]
    views.append(_viewed("x", now + timedelta(minutes=3), "Hats"))  # another category
    assert tracker.batch(views, server=True).status_code == 200
    drain(app)
    assert _fired(db, rule.rule_id) == []
    # y bought shoes: their third view fires nothing; x's does.
    with db.begin() as conn:
        conn.execute(
            orders.insert().values(
                site_id=site.site_id,
                order_id="o-y",
                user_id="y",
                message_id="m-o-y",
                total=50,
                revenue=50,
                currency="EUR",
                ordered_at=now,
            )
        )
        conn.execute(
            order_lines.insert().values(
                site_id=site.site_id, order_id="o-y", position=0, category="Shoes", quantity=1
            )
        )
    third = [_viewed(u, now + timedelta(minutes=10), "Shoes") for u in ("x", "y")]
    assert tracker.batch(third, server=True).status_code == 200
    drain(app)
    [fired] = _fired(db, rule.rule_id)
    assert fired["user_id"] == "x"
    assert fired["values"] == {"category": "shoes", "views": 3, "days": 7}


# -- the console page ------------------------------------------------------------------------------


def test_a_marketer_creates_and_disables_a_rule_audited(app, db, site):
    client = app.test_client()
    sign_in(client, app, "marketer@staff.example", {site.site_id: "marketer"})
    path = f"/console/{site.site_id}/value/triggers"
    page = client.get(path)
    assert page.status_code == 200 and "No rules yet." in page.get_data(as_text=True)
    assert 'id="no-webhook"' in page.get_data(as_text=True)
    form = {
        "csrf_token": csrf_token(client, path),
        "name": "Frequent visitors",
        "kind": "visits",
        "visits": "5",
        "days": "14",
        "cooldown_hours": "72",
    }
    answer = client.post(path, data=form)
    assert answer.status_code == 303
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Frequent visitors" in page and "5 visits or more in 14 days" in page
    with db.connect() as conn:
        [rule] = triggers.rules(conn, site.site_id)
    [entry] = [e for e in audit.entries(db, [site.site_id]) if e.action == "trigger.created"]
    assert entry.email == "marketer@staff.example"
    assert entry.detail["params"] == {"visits": 5, "days": 14}
    answer = client.post(
        f"{path}/{rule.rule_id}/disable", data={"csrf_token": csrf_token(client, path)}
    )
    assert answer.status_code == 303
    with db.connect() as conn:
        assert triggers.get_rule(conn, site.site_id, rule.rule_id).enabled is False
    assert any(e.action == "trigger.disabled" for e in audit.entries(db, [site.site_id]))
    missing = client.post(f"{path}/999999/disable", data={"csrf_token": csrf_token(client, path)})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"kind": "segment", "segment": "Nobody"}, "segment", "Unknown segment"),
        (
            {"kind": "category_views", "category": "Shoes", "views": "0", "days": "3"},
            "views",
            "between 1",
        ),
        ({"kind": "visits", "visits": "2", "days": "0"}, "days", "between 1"),
        ({"kind": "clv", "currency": "EUR", "threshold": "-5"}, "threshold", "0 or more"),
    ],
)
def test_bad_input_on_the_page_shows_the_form_again_with_the_error(
    app, db, site, fields, field, words
):
    client = app.test_client()
    sign_in(client, app, "marketer@staff.example", {site.site_id: "marketer"})
    path = f"/console/{site.site_id}/value/triggers"
    answer = client.post(path, data={"csrf_token": csrf_token(client, path), "name": "x", **fields})
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert f'<span class="error" id="{field}-error">' in page and words in page
    assert 'value="x"' in page  # what was typed stays
    assert count(db, trigger_rules) == 0
    assert not [e for e in audit.entries(db, [site.site_id]) if e.action == "trigger.created"]


def test_a_viewer_reads_the_rules_without_the_form(app, db, site):
    _rule(db, site.site_id, kind="segment", segment="At Risk")
    client = app.test_client()
    sign_in(client, app, "viewer@staff.example", {site.site_id: "viewer"})
    page = client.get(f"/console/{site.site_id}/value/triggers").get_data(as_text=True)
    assert "enters the segment At Risk" in page
    assert "Save rule" not in page and "Disable" not in page
    answer = client.post(f"/console/{site.site_id}/value/triggers", data={})
    assert answer.status_code in (400, 403)


# -- wired into the refresh ------------------------------------------------------------------------


def _entered(db, site_id: int, segment: str) -> set[str]:
    """Who entered ``segment`` between the two newest snapshots, read straight from the rows."""
    with db.connect() as conn:
        days = sorted({r.day for r in conn.execute(sa.select(value_scores.c.day).distinct())})
        new, old = days[-1], days[-2]
        rows = conn.execute(
            sa.select(value_scores.c.day, value_scores.c.user_id, value_scores.c.segment).where(
                value_scores.c.site_id == site_id, value_scores.c.day.in_([new, old])
            )
        ).all()
    before = {(r.user_id) for r in rows if r.day == old and r.segment == segment}
    return {r.user_id for r in rows if r.day == new and r.segment == segment} - before


def test_the_refresh_command_fires_the_score_rules_of_the_newest_day(app, runner, db, site):
    scored_shop(db, site.site_id)
    # The snapshot of BEFORE again with everybody elsewhere, so the refresh of DAY finds entries.
    with db.begin() as conn:
        conn.execute(
            value_scores.update()
            .where(value_scores.c.day == BEFORE)
            .values(segment="Hibernating", r_score=1, f_score=1)
        )
    rule = _rule(db, site.site_id, kind="segment", segment="Champions")
    older = runner.invoke(
        args=["analytics", "refresh", "--site", site.write_key, "--day", "2026-11-01"]
    )
    assert older.exit_code == 0 and "fired" not in older.output  # not the newest day
    result = runner.invoke(
        args=["analytics", "refresh", "--site", site.write_key, "--day", str(DAY)]
    )
    assert result.exit_code == 0, result.output
    entered = _entered(db, site.site_id, "Champions")
    assert entered  # the shop has champions on DAY
    assert f"{site.name}: {len(entered)} triggers fired" in result.output
    assert {f["user_id"] for f in _fired(db, rule.rule_id)} == entered


def test_the_scheduler_job_fires_the_score_rules_after_its_refresh(app, db, site):
    scored_shop(db, site.site_id)  # snapshots of BEFORE and DAY; the job adds today's
    with db.begin() as conn:
        conn.execute(
            value_scores.update()
            .where(value_scores.c.day == DAY)
            .values(segment="Hibernating", r_score=1, f_score=1)
        )
    rule = _rule(db, site.site_id, kind="segment", segment="Champions")
    with app.app_context():
        said = refresh_customer_value(site)
    entered = _entered(db, site.site_id, "Champions")
    assert entered  # the quintiles always have champions
    assert said.endswith(f", {len(entered)} triggers fired")
    assert {f["user_id"] for f in _fired(db, rule.rule_id)} == entered


def test_the_fired_log_is_exported_and_erased_with_the_customer(app, client, db, site):
    _two_snapshots(db, site.site_id)
    rule = _rule(db, site.site_id, kind="segment", segment="Champions")
    assert trigger_checks.evaluate_scores(db, site.site_id, None, now=NOW) == 2  # a and c
    headers = {"Authorization": f"Bearer {site.server_key}"}
    exported = client.get("/v1/customers/c/export", headers=headers)
    assert exported.status_code == 200
    text = exported.get_data(as_text=True)
    assert "trigger_fired" in text and "day_before" in text  # the values that fired it
    erased = client.delete("/v1/customers/a", headers=headers)
    assert erased.status_code == 200, erased.get_json()
    assert [f["user_id"] for f in _fired(db, rule.rule_id)] == ["c"]
