"""The console's rules page: who may read and change, the form's errors, preview, audit, CSRF."""

from __future__ import annotations

import pytest

from accounts import audit
from recommender import rule_store
from tests.staff_helpers import csrf_token, sign_in
from tracking.catalogue import upsert_items, validate_item
from tracking.sites import create_site

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def engine(app):
    return app.extensions["ecrm"].engine


@pytest.fixture
def shop(engine):
    site, _ = create_site(engine, "Shop A", ["https://a.example"])
    rows = [
        {"item_id": f"sku-{i}", "title": f"Item {i}", "category": "Home", "price": 10 + i}
        for i in range(1, 8)
    ]
    rows.append({"item_id": "sku-evil", "title": HOSTILE, "category": "Home", "price": 5})
    upsert_items(engine, site.site_id, [validate_item(r) for r in rows])
    return site


def page(site_id: int, placement: str = "home") -> str:
    return f"/console/{site_id}/rules?placement={placement}"


def form(**fields) -> dict:
    """The editor's fields as a browser sends them (defaults for the rest)."""
    sent = {
        "placement": "home",
        "campaign_rows": "1",
        "exclude_purchased": "on",
        "trait_constraints": "age_restricted: age >= 18",
        "action": "save",
    }
    sent.update(fields)
    return sent


def test_a_viewer_reads_the_rules_but_cannot_save(app, client, engine, shop):
    with engine.begin() as conn:
        from recommender.rules import Rules

        rule_store.save(conn, shop.site_id, "home", Rules(max_price=40), by="api")
    sign_in(client, app, "vera@a.example", {shop.site_id: "viewer"})
    shown = client.get(page(shop.site_id))
    assert shown.status_code == 200
    html = shown.get_data(as_text=True)
    assert 'value="40"' in html and "price –40" in html
    assert "Save rules" not in html and "a marketer or an owner" in html
    token = csrf_token(client, page(shop.site_id))
    refused = client.post(
        f"/console/{shop.site_id}/rules", data=form(csrf_token=token, max_price="10")
    )
    assert refused.status_code == 403
    assert rule_store.load(engine, shop.site_id).rules_for("home").max_price == 40


def test_a_marketer_saves_and_the_change_is_audited(app, client, engine, shop):
    member = sign_in(client, app, "mark@a.example", {shop.site_id: "marketer"})
    token = csrf_token(client, page(shop.site_id))
    saved = client.post(
        f"/console/{shop.site_id}/rules",
        data=form(
            csrf_token=token,
            pinned="sku-2, sku-3",
            exclude_categories="Garden",
            max_price="30",
            boosts="sku-4 = 1.5",
            campaign_rows="1",
            **{
                "campaigns-0-name": "Winter",
                "campaigns-0-starts": "2026-12-01",
                "campaigns-0-ends": "2026-12-24",
                "campaigns-0-pinned": "sku-5",
            },
        ),
    )
    html = saved.get_data(as_text=True)
    assert saved.status_code == 200, html[:2000]
    assert "home: saved as version 1" in html
    assert "no item is in category &#39;Garden&#39;" in html  # a warning, not an error
    rules = rule_store.load(engine, shop.site_id).rules_for("home")
    assert rules.pinned == ("sku-2", "sku-3") and rules.max_price == 30
    assert rules.boosts == {"sku-4": 1.5} and rules.campaigns[0].pinned == ("sku-5",)
    entry = audit.entries(engine, [shop.site_id], limit=5)[0]
    assert entry.action == "rules.update" and entry.staff_id == member.staff_id
    assert entry.detail == {"placement": "home", "version": 1, "source": "console"}
    # The saved values are what the editor shows next time.
    again = client.get(page(shop.site_id)).get_data(as_text=True)
    assert "sku-2\nsku-3" in again and 'value="Winter"' in again


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"min_price": "20", "max_price": "10"}, "max_price", "below min_price"),
        ({"max_price": "cheap"}, "max_price", "must be a number"),
        ({"pinned": "sku-1, nope"}, "pinned", "no item &#39;nope&#39;"),
        ({"boosts": "sku-1 twice"}, "boosts", "item_id = multiplier"),
        ({"vip_pinned": "sku-1, nope"}, "vip_pinned", "no item &#39;nope&#39;"),
        ({"vip_boosts": "sku-1 = 0"}, "vip_boosts", "more than 0"),
        ({"vip_boosts": "sku-1 twice"}, "vip_boosts", "item_id = multiplier"),
        (
            {
                "campaigns-0-pinned": "sku-1",
                "campaigns-0-starts": "2026-12-10",
                "campaigns-0-ends": "2026-12-01",
            },
            "campaigns-0-ends",
            "before it starts",
        ),
        ({"placement": "a b"}, "placement", "letters, digits"),
    ],
)
def test_bad_values_are_shown_beside_their_field_and_nothing_is_saved(
    app, client, engine, shop, fields, field, reason
):
    sign_in(client, app, "mark@a.example", {shop.site_id: "marketer"})
    token = csrf_token(client, page(shop.site_id))
    response = client.post(f"/console/{shop.site_id}/rules", data=form(csrf_token=token, **fields))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    error = html.split(f'id="{field}-error">', 1)[1].split("</span>", 1)[0]
    assert reason in error, error
    assert rule_store.load(engine, shop.site_id).version == 0
    assert [e for e in audit.entries(engine, [shop.site_id]) if e.action == "rules.update"] == []


def test_a_marketer_edits_the_vip_variant(app, client, engine, shop):
    sign_in(client, app, "mark@a.example", {shop.site_id: "marketer"})
    token = csrf_token(client, page(shop.site_id))
    saved = client.post(
        f"/console/{shop.site_id}/rules",
        data=form(
            csrf_token=token, pinned="sku-1", vip_pinned="sku-5\nsku-6", vip_boosts="sku-7 = 3"
        ),
    )
    assert saved.status_code == 200, saved.get_data(as_text=True)[:2000]
    rules = rule_store.load(engine, shop.site_id).rules_for("home")
    assert rules.vip.pinned == ("sku-5", "sku-6") and dict(rules.vip.boosts) == {"sku-7": 3.0}
    assert rules.pinned == ("sku-1",)
    for_vip = rules.for_vip()
    assert for_vip.pinned == ("sku-5", "sku-6", "sku-1") and for_vip.boosts == {"sku-7": 3.0}
    again = client.get(page(shop.site_id)).get_data(as_text=True)
    assert "sku-5\nsku-6</textarea>" in again and "sku-7 = 3</textarea>" in again
    assert "VIPs: 2 pinned, 1 boosted" in again
    assert 'id="vip_only" name="vip_only">' in again  # not ticked
    # The VIPs' own placement: ticked, stored, shown ticked again.
    client.post(
        f"/console/{shop.site_id}/rules",
        data=form(csrf_token=token, vip_pinned="sku-5", vip_only="on"),
    )
    rules = rule_store.load(engine, shop.site_id).rules_for("home")
    assert rules.vip.only and rules.vip.pinned == ("sku-5",)
    again = client.get(page(shop.site_id)).get_data(as_text=True)
    assert 'id="vip_only" name="vip_only" checked>' in again and "VIPs only" in again
    # Emptied, the variant is gone.
    client.post(f"/console/{shop.site_id}/rules", data=form(csrf_token=token, pinned="sku-1"))
    assert not rule_store.load(engine, shop.site_id).rules_for("home").vip


def test_preview_shows_the_edited_rules_beside_the_saved_ones(app, client, engine, shop):
    sign_in(client, app, "mark@a.example", {shop.site_id: "marketer"})
    token = csrf_token(client, page(shop.site_id))
    response = client.post(
        f"/console/{shop.site_id}/rules",
        data=form(csrf_token=token, action="preview", customer="c-1", pinned="sku-evil"),
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200, html[:2000]
    edited = html.split('id="preview-edited"', 1)[1].split("</table>", 1)[0]
    saved = html.split('id="preview-saved"', 1)[1].split("</table>", 1)[0]
    assert "<td>sku-evil</td>" in edited.split("<tr>")[2] and "featured" in edited
    assert "sku-evil" in saved and "featured" not in saved  # the catalogue order, unpinned
    assert "source fallback" in edited  # no model trained: the catalogue answers
    assert HOSTILE not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert rule_store.load(engine, shop.site_id).version == 0  # a preview saves nothing
    missing = client.post(
        f"/console/{shop.site_id}/rules", data=form(csrf_token=token, action="preview")
    )
    assert missing.status_code == 400 and 'id="customer-error"' in missing.get_data(as_text=True)


def test_preview_of_a_vips_own_placement_for_someone_else_is_empty(app, client, shop):
    # As serving answers: c-1 is not a VIP (no customer value snapshot), so no items.
    sign_in(client, app, "mark@a.example", {shop.site_id: "marketer"})
    token = csrf_token(client, page(shop.site_id))
    fields = dict(csrf_token=token, action="preview", customer="c-1", vip_pinned="sku-1")
    everyone = client.post(f"/console/{shop.site_id}/rules", data=form(**fields))
    html = everyone.get_data(as_text=True)
    edited = html.split('id="preview-edited"', 1)[1].split("</table>", 1)[0]
    assert everyone.status_code == 200 and "<td>sku-" in edited
    only = client.post(f"/console/{shop.site_id}/rules", data=form(vip_only="on", **fields))
    html = only.get_data(as_text=True)
    edited = html.split('id="preview-edited"', 1)[1].split("</table>", 1)[0]
    assert only.status_code == 200 and "source vip_only" in edited
    assert "<td>sku-" not in edited and "Nothing to show under these rules." in edited


def test_removing_a_placements_rules_and_csrf(app, client, engine, shop):
    sign_in(client, app, "owner@a.example", {shop.site_id: "owner"})
    url = f"/console/{shop.site_id}/rules"
    for bad in ({}, {"csrf_token": "forged"}):
        refused = client.post(url, data=form(max_price="10", **bad))
        assert refused.status_code == 400 and "CSRF" in refused.get_data(as_text=True)
    assert rule_store.load(engine, shop.site_id).version == 0
    token = csrf_token(client, page(shop.site_id))
    assert client.post(url, data=form(csrf_token=token, max_price="10")).status_code == 200
    removed = client.post(url, data=form(csrf_token=token, action="remove"))
    assert "home: its own rules removed (version 2)" in removed.get_data(as_text=True)
    assert rule_store.load(engine, shop.site_id).placements == {}
    details = [e.detail for e in audit.entries(engine, [shop.site_id], limit=5)]
    assert details[0] == {"placement": "home", "version": 2, "source": "console", "removed": True}


def test_other_sites_and_signed_out_visitors_see_nothing(app, client, engine, shop):
    assert client.get(page(shop.site_id)).status_code == 302  # to the sign-in page
    other, _ = create_site(engine, "Shop B", [])
    sign_in(client, app, "owner@b.example", {other.site_id: "owner"})
    assert client.get(page(shop.site_id)).status_code == 404
    token = csrf_token(client, page(other.site_id))
    refused = client.post(f"/console/{shop.site_id}/rules", data=form(csrf_token=token))
    assert refused.status_code == 404
