"""The console's segments: viewers read and count, marketers save and export; errors beside their
fields; the export's CSV holds the consenting targets only, and is recorded and audited."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from accounts import preferences, segment_exports, segments
from accounts.schema import audit_log
from tests.staff_helpers import csrf_token, sign_in
from tests.value_helpers import DAY, score, store_snapshot


@pytest.fixture
def shop(db, site):
    rows = [score(f"c{i}", 5, 5, 100.0 + i, clv=100.0 + i, p_alive=0.9) for i in range(10)]
    rows += [score("h1", 1, 1, 5.0, clv=1.0, p_alive=0.1)]
    store_snapshot(db, site.site_id, DAY, "EUR", rows)
    with db.begin() as conn:
        for i in range(10):
            preferences.set_preferences(
                conn, site.site_id, f"c{i}", {"email:offers": i < 8}, source="api", wording="Mail"
            )
    return site


def _url(site, *parts) -> str:
    return "/".join([f"/console/{site.site_id}/segments", *map(str, parts)])


def test_viewer_counts_but_cannot_save_or_export(client, app, shop, db):
    sign_in(client, app, "viewer@shop.example", {shop.site_id: "viewer"})
    page = client.get(_url(shop), query_string={"count": "1", "segments": "Champions"})
    assert page.status_code == 200
    assert '<p class="kpi" id="live-count" role="status"><strong>10</strong> members' in page.text
    assert "Save segment" not in page.text and "a marketer or owner can save" in page.text
    token = csrf_token(client, _url(shop))
    refused = client.post(_url(shop), data={"name": "x", "csrf_token": token})
    assert refused.status_code == 403
    with db.connect() as conn:
        assert segments.listing(conn, shop.site_id) == []


def test_marketer_saves_sees_members_and_exports_with_a_control(client, app, shop, db):
    sign_in(client, app, "marketer@shop.example", {shop.site_id: "marketer"})
    token = csrf_token(client, _url(shop))
    form = {"name": "Best", "segments": ["Champions"], "clv_min": "103", "csrf_token": token}
    saved = client.post(_url(shop), data=form)
    assert saved.status_code == 303
    page_url = saved.headers["Location"]
    with db.connect() as conn:
        (segment,) = segments.listing(conn, shop.site_id)
    assert page_url.endswith(_url(shop, segment.id))
    page = client.get(page_url)
    assert "<strong>7</strong> members" in page.text  # c3..c9
    assert 'value="103"' in page.text and 'value="Champions" checked' in page.text
    shown = list(
        csv.reader(io.StringIO(client.get(page_url, query_string={"csv": "members"}).text))
    )
    assert [r[0] for r in shown[1:]] == [f"c{i}" for i in range(3, 10)]
    listing = client.get(_url(shop)).text
    assert f'href="{_url(shop, segment.id)}">Best</a></td><td class="int">7</td>' in listing

    answer = client.post(
        _url(shop, segment.id, "export"),
        data={"channel": "email", "topic": "offers", "control_share": "20", "csrf_token": token},
    )
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(answer.text)))
    targets = {r[0] for r in rows[1:]}
    with db.connect() as conn:
        (done,) = segment_exports.exports(conn, shop.site_id, segment.id)
        sides = segment_exports.export_members(conn, done["id"])
        entry = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "segment.export")
        ).one()
    # c3..c7 consented (c8, c9 did not): 5 eligible, 1 held back.
    assert done["targets"] == 4 and done["controls"] == 1 and len(targets) == 4
    assert set(sides) == {"c3", "c4", "c5", "c6", "c7"}
    assert {u for u, control in sides.items() if not control} == targets
    assert entry.email == "marketer@shop.example" and entry.detail["export_id"] == done["id"]
    assert 'id="exports"' in client.get(page_url).text


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"clv_min": "9", "clv_max": "2"}, "clv_max"),
        ({"p_alive_min": "2"}, "p_alive_min"),
        ({"cells": "9-9"}, "cells"),
        ({"traits": "age=5..1"}, "traits"),
        ({"traits": "nonsense"}, "traits"),
        ({"name": ""}, "name"),
        ({"consent_channel": "fax"}, "consent_channel"),
    ],
)
def test_bad_definitions_show_the_form_again_with_the_error_beside_the_field(
    client, app, shop, db, changes, field
):
    sign_in(client, app, "marketer@shop.example", {shop.site_id: "marketer"})
    form = {"name": "Best", "segments": ["Champions"], **changes}
    response = client.post(_url(shop), data={**form, "csrf_token": csrf_token(client, _url(shop))})
    assert response.status_code == 422
    assert f'id="{field}-error"' in response.text and "Nothing was saved" in response.text
    assert f'aria-describedby="{field}-error"' in response.text
    counted = client.get(_url(shop), query_string={**form, "count": "1"})
    if field == "name":  # counting needs no name
        assert counted.status_code == 200 and "<strong>10</strong> members" in counted.text
    else:
        assert counted.status_code == 422 and f'id="{field}-error"' in counted.text
    with db.connect() as conn:
        assert segments.listing(conn, shop.site_id) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"channel": "fax"}, "channel"),
        ({"control_share": "80"}, "control_share"),
        ({"control_share": "lots"}, "control_share"),
    ],
)
def test_bad_export_choices_are_shown_beside_their_field(client, app, shop, db, changes, field):
    sign_in(client, app, "marketer@shop.example", {shop.site_id: "marketer"})
    with db.begin() as conn:
        seg = segments.save(conn, shop.site_id, "All", segments.Definition())
    data = {"channel": "email", "topic": "offers", "control_share": "10", **changes}
    token = csrf_token(client, _url(shop))
    response = client.post(_url(shop, seg, "export"), data={**data, "csrf_token": token})
    assert response.status_code == 422 and f'id="{field}-error"' in response.text
    with db.connect() as conn:
        assert segment_exports.exports(conn, shop.site_id, seg) == []


def test_another_sites_segment_is_not_found(client, app, shop, db):
    with db.begin() as conn:
        seg = segments.save(conn, shop.site_id, "All", segments.Definition())
    sign_in(client, app, "marketer@shop.example", {shop.site_id: "marketer"})
    assert client.get(_url(shop, seg + 100)).status_code == 404


def test_the_campaign_report_compares_targets_with_control(client, app, shop, db):
    from datetime import UTC, datetime, timedelta

    from accounts import segment_report
    from tracking.schema import orders

    with db.begin() as conn:
        seg = segments.save(conn, shop.site_id, "All", segments.Definition())
        done = segment_exports.export(
            conn, shop.site_id, seg, "email", control_share=0.5, seed=3, by="m@shop.example"
        )
    with db.connect() as conn:
        sides = segment_exports.export_members(conn, done.id)
    assert done.targets == 4 and done.controls == 4  # c0..c7 consented
    assert sorted(sides.values()) == [False] * 4 + [True] * 4
    soon = datetime.now(UTC)  # after the export
    buyers = [u for u in sides if not sides[u]][:3] + [u for u in sides if sides[u]][:1]
    with db.begin() as conn:
        conn.execute(
            sa.insert(orders),
            [
                {
                    "site_id": shop.site_id,
                    "order_id": f"o{u}",
                    "user_id": u,
                    "message_id": f"m{u}",
                    "total": 50,
                    "currency": "EUR",
                    "ordered_at": soon,
                }
                for u in buyers
            ]
            + [  # before the export, and in another currency: neither counts
                {
                    "site_id": shop.site_id,
                    "order_id": "old",
                    "user_id": buyers[0],
                    "message_id": "mold",
                    "total": 9,
                    "currency": "EUR",
                    "ordered_at": soon - timedelta(days=3),
                },
                {
                    "site_id": shop.site_id,
                    "order_id": "usd",
                    "user_id": buyers[0],
                    "message_id": "musd",
                    "total": 9,
                    "currency": "USD",
                    "ordered_at": soon,
                },
            ],
        )
    with db.connect() as conn:
        found = segment_report.report(
            conn, shop.site_id, seg, done.id, 30, now=soon + timedelta(days=40)
        )
    targets, control = found["groups"]
    assert (targets["members"], targets["buyers"], targets["revenue"]) == (4, 3, 150.0)
    assert (control["members"], control["buyers"], control["revenue"]) == (4, 1, 50.0)
    assert found["complete"] and found["lift"]["buyer_rate"]["difference"] == 0.5
    rate = found["lift"]["buyer_rate"]
    assert rate["difference_low"] < 0.5 < rate["difference_high"]
    # 3 of 4 against 1 of 4: pooled rate 1/2, z = 0.5 / sqrt(1/4 * 1/2) = sqrt(2).
    assert rate["p_value"] == pytest.approx(0.157299, abs=1e-6)
    money = found["lift"]["revenue_per_member"]
    assert money["difference"] == 25.0 and money["difference_low"] < 25 < money["difference_high"]

    sign_in(client, app, "viewer@shop.example", {shop.site_id: "viewer"})
    url = _url(shop, seg, "exports", done.id)
    page = client.get(url)
    assert page.status_code == 200 and 'id="groups"' in page.text and 'id="lift"' in page.text
    assert 'id="so-far"' in page.text  # 30 days have not passed yet
    rows = list(csv.reader(io.StringIO(client.get(url, query_string={"csv": "groups"}).text)))
    assert [r[:3] for r in rows[1:]] == [["Targets", "4", "3"], ["Control", "4", "1"]]
    bad = client.get(url, query_string={"days": "0"})
    assert bad.status_code == 422 and 'id="days-error"' in bad.text
    assert client.get(_url(shop, seg, "exports", done.id + 50)).status_code == 404
    assert f'href="{url}"' in client.get(_url(shop, seg)).text
