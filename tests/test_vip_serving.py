"""VIPs served differently (issue 14, item 9): a placement's VIP variant, the customer's segment in
server-key answers (never in browser ones), a new snapshot and a rules change reaching every
process within seconds, the variant edited through /v1/rules and documented."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics import customer_segments
from tests.conftest import ORIGIN
from tests.test_openapi import assert_documented, property_names
from tests.test_serving import Served, auth, trained, wait_for  # noqa: F401  (fixture)
from tests.value_helpers import DAY, score, store_snapshot
from tracking import identity
from webapp import create_app
from webapp.openapi.document import build_document


@pytest.fixture
def served(app, client, site, trained):  # noqa: F811
    shop, registry = trained
    return Served(app, client, site, shop, registry)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [i["item_id"] for i in response.get_json()["items"]]


def put(served, placement: str, body: dict):
    r = served.client.put(f"/v1/rules/{placement}", json=body, headers=auth(served.site))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def scored(served, day=DAY, vip=(), others=()) -> None:
    """A snapshot where ``vip`` are VIP Champions and ``others`` Hibernating non-VIPs."""
    rows = [score(u, 5, 5, 500.0, vip=True) for u in vip]
    rows += [score(u, 1, 1, 5.0) for u in others]
    store_snapshot(served.engine, served.site.site_id, day, "EUR", rows)


def not_recommended(served, users: list[str], n: int = 10) -> str:
    """An item in the catalogue that none of ``users`` gets without rules."""
    seen = {i for u in users for i in ids(served.get(user_id=u, n=n))}
    return next(i["item_id"] for i in served.shop.items if i["item_id"] not in seen)


def test_a_vip_gets_the_vip_variant_and_others_do_not(served):
    vip, regular = served.customers(cluster=2)[:2]
    scored(served, vip=[vip], others=[regular])
    served.layer.sites.reload_segments(served.site.site_id)
    pin = not_recommended(served, [vip, regular])
    boosted = not_recommended(served, [vip, regular, pin])
    put(served, "default", {"vip": {"pinned": [pin], "boosts": {boosted: 100.0}}})

    vip_answer = served.get(user_id=vip, n=10).get_json()
    assert vip_answer["items"][0]["item_id"] == pin
    assert vip_answer["customer"] == {"segment": "Champions", "vip": True}
    regular_answer = served.get(user_id=regular, n=10).get_json()
    assert pin not in ids_of(regular_answer)
    assert regular_answer["customer"] == {"segment": "Hibernating", "vip": False}
    # A placement with its own rules and no VIP variant: VIPs get the same as everyone there.
    put(served, "cart", {"max_per_category": 3})
    assert pin not in ids(served.get(user_id=vip, n=10, placement="cart"))
    # Not scored, or a visitor: no segment, no variant.
    unscored = served.customers(cluster=2)[2]
    answer = served.get(user_id=unscored, n=10).get_json()
    assert answer["customer"] is None and pin not in ids_of(answer)
    assert served.get(anonymous_id="v-1", n=10).get_json()["customer"] is None


def ids_of(answer: dict) -> list[str]:
    return [i["item_id"] for i in answer["items"]]


def test_a_vip_only_placement_answers_others_nothing(served):
    vip, regular = served.customers(cluster=2)[:2]
    scored(served, vip=[vip], others=[regular])
    served.layer.sites.reload_segments(served.site.site_id)
    pin = not_recommended(served, [vip, regular])
    stored = put(served, "vip-corner", {"vip": {"pinned": [pin], "only": True}})
    assert stored["rules"]["vip"] == {"pinned": [pin], "boosts": {}, "only": True}

    vip_answer = served.get(user_id=vip, n=5, placement="vip-corner").get_json()
    assert ids_of(vip_answer)[0] == pin and len(vip_answer["items"]) == 5
    for answer in (
        served.get(user_id=regular, n=5, placement="vip-corner").get_json(),
        served.get(anonymous_id="v-2", n=5, placement="vip-corner").get_json(),
    ):
        assert answer["items"] == [] and answer["source"] == "vip_only"
    # The site's other placements are not affected.
    assert ids(served.get(user_id=regular, n=5))
    # Back to a variant without "only": everyone is answered again.
    put(served, "vip-corner", {"vip": {"pinned": [pin]}})
    assert ids(served.get(user_id=regular, n=5, placement="vip-corner"))


def test_the_browser_answer_never_carries_the_segment(served):
    vip = served.customers(cluster=1)[0]
    scored(served, vip=[vip])
    served.layer.sites.reload_segments(served.site.site_id)
    pin = not_recommended(served, [vip])
    put(served, "default", {"vip": {"pinned": [pin]}})
    site = served.site
    r = served.get(
        headers={"Origin": ORIGIN},
        write_key=site.write_key,
        user_id=vip,
        user_hash=identity.user_hash(site.identity_secret, vip),
    )
    body = r.get_json()
    assert r.status_code == 200 and "customer" not in body
    assert body["items"][0]["item_id"] == pin  # served as a VIP all the same
    # The write key in Authorization (a Segment-style client) is a browser's key too.
    r = served.get(
        headers={"Authorization": f"Bearer {site.write_key}", "Origin": ORIGIN},
        user_id=vip,
        user_hash=identity.user_hash(site.identity_secret, vip),
    )
    assert r.status_code == 200 and "customer" not in r.get_json()


def test_a_new_snapshot_and_a_variant_change_reach_a_second_process(served, app_config, redis):
    """Two web processes: the refresh's announcement makes the second serve a new VIP within
    seconds; a change of the VIP variant reaches its cached answers too."""
    other = create_app(app_config)
    try:
        layer = other.extensions["ecrm_serving"]
        site_id = served.site.site_id
        layer.state(site_id)
        assert layer.listening.wait(5)
        there = other.test_client()
        customer = served.customers(cluster=3)[0]

        def answer():
            return there.get(
                "/v1/recommendations",
                query_string={"user_id": customer, "n": 8},
                headers=auth(served.site),
            )

        pin = not_recommended(served, [customer], n=8)
        put(served, "default", {"vip": {"pinned": [pin]}})
        assert answer().get_json()["customer"] is None
        assert answer().headers["X-Ecrm-Cache"] == "local" and pin not in ids(answer())
        scored(served, vip=[customer])
        customer_segments.announce(redis, site_id)
        assert wait_for(lambda: ids(answer())[0] == pin, seconds=5.0)
        assert answer().get_json()["customer"] == {"segment": "Champions", "vip": True}
        # The variant changed: the cached VIP answer goes, in the other process too.
        second = not_recommended(served, [customer, pin], n=8)
        put(served, "default", {"vip": {"pinned": [second]}})
        assert wait_for(lambda: ids(answer())[0] == second, seconds=5.0)
        # A newer snapshot without them: no longer a VIP.
        scored(served, day=DAY + timedelta(days=1), others=[customer])
        customer_segments.announce(redis, site_id)
        assert wait_for(lambda: ids(answer())[0] != second, seconds=5.0)
        assert answer().get_json()["customer"] == {"segment": "Hibernating", "vip": False}
    finally:
        other.extensions["ecrm_serving"].close()
        other.extensions["ecrm"].engine.dispose()


def test_a_lost_announcement_is_caught_up_by_the_periodic_check(served):
    site_id = served.site.site_id
    sites = served.layer.sites
    customer = served.customers(cluster=0)[0]
    assert sites.segments(site_id, wait=True).lookup(customer) is None
    scored(served, vip=[customer])  # stored without announcing it
    assert sites.segments(site_id).lookup(customer) is None  # held in memory, not read per request
    sites.reload_segments(site_id, if_moved=True)  # what the catalogue refresh does
    assert sites.segments(site_id).lookup(customer) == {"segment": "Champions", "vip": True}
    held = sites.segments(site_id)
    assert sites.reload_segments(site_id, if_moved=True) is held  # unchanged: not read again


def test_several_currencies_make_one_answer(db, site):
    """A VIP in any currency is a VIP; the segment is the currency's with the most orders."""
    store_snapshot(
        db,
        site.site_id,
        DAY,
        "EUR",
        [score("both", 1, 1, 10.0, orders=5), score("eur-only", 5, 5, 900.0, vip=True)],
    )
    store_snapshot(db, site.site_id, DAY, "USD", [score("both", 5, 5, 800.0, orders=2, vip=True)])
    # An older snapshot is never read.
    store_snapshot(db, site.site_id, DAY - timedelta(days=7), "EUR", [score("old", 5, 5, 1.0)])
    held = customer_segments.load(db, site.site_id)
    assert len(held) == 2
    assert held.lookup("both") == {"segment": "Hibernating", "vip": True}
    assert held.lookup("eur-only") == {"segment": "Champions", "vip": True}
    assert held.lookup("old") is None and held.lookup("") is None
    assert held.lookup("x" * 200) is None
    assert customer_segments.load(db, site.site_id + 1000).lookup("both") is None


def test_the_rules_api_keeps_the_vip_variant(served):
    item, other = (i["item_id"] for i in served.shop.items[:2])
    stored = put(served, "home", {"pinned": [other], "vip": {"pinned": [item], "boosts": {}}})
    assert stored["rules"]["vip"] == {"pinned": [item], "boosts": {}}
    read = served.client.get("/v1/rules", headers=auth(served.site)).get_json()
    assert read["placements"]["home"]["vip"] == {"pinned": [item], "boosts": {}}
    # Without a variant the document has none (and its rules keep their fingerprint).
    stored = put(served, "home", {"pinned": [other]})
    assert "vip" not in stored["rules"]


@pytest.mark.parametrize(
    "vip, field",
    [
        ({"pinned": ["no-such-item"]}, "body.vip.pinned"),
        ({"boosts": {"no-such-item": 2.0}}, "body.vip.boosts"),
        ({"boosts": {"ITEM": 0}}, "body.vip.boosts"),
        ({"pins": ["ITEM"]}, "body.vip.pins"),
        ({"pinned": "ITEM"}, "body.vip.pinned"),
        ({"only": "yes"}, "body.vip.only"),
        ("ITEM", "body.vip"),
    ],
)
def test_a_bad_vip_variant_is_refused_naming_the_field(served, vip, field):
    item = served.shop.items[0]["item_id"]
    body = {"vip": _replace(vip, "ITEM", item)}
    r = served.client.put("/v1/rules/home", json=body, headers=auth(served.site))
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["field"].startswith(field)
    assert served.client.get("/v1/rules", headers=auth(served.site)).get_json()["placements"] == {}


def _replace(value, old: str, new: str):
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    if not isinstance(value, dict):
        return value
    return {_replace(k, old, new): _replace(v, old, new) for k, v in value.items()}


def test_the_server_answer_fits_the_document(served):
    document = build_document("http://localhost", dict(served.app.config))
    vip = served.customers(cluster=1)[0]
    scored(served, vip=[vip])
    served.layer.sites.reload_segments(served.site.site_id)
    for user in (vip, "not-scored"):
        r = served.get(user_id=user, n=5)
        assert_documented(document, "/v1/recommendations", "get", r)
        assert set(r.get_json()) == property_names(document, "PersonalRecommendations")
    rules = document["components"]["schemas"]["RulesDocument"]["properties"]
    assert "vip" in rules


def test_the_refresh_command_announces_the_new_snapshot(served, runner):
    """`analytics refresh` scores the shop and tells the web processes: this app's serving layer
    (listening, as a live process) holds the new VIPs within seconds, without a restart."""
    from tests.value_helpers import scored_shop

    site_id = served.site.site_id
    sites = served.layer.sites
    assert len(sites.segments(site_id, wait=True)) == 0
    scored_shop(served.engine, site_id)  # two snapshots written, not announced
    result = runner.invoke(args=["analytics", "refresh", "--site", served.site.write_key])
    assert result.exit_code == 0, result.output
    assert wait_for(lambda: len(sites.segments(site_id)) == 63, seconds=5.0)
    held = sites.segments(site_id)
    vips = [f"c{c:02d}" for c in range(60) if held.is_vip(f"c{c:02d}")]
    assert 0 < len(vips) < 60  # the default rule: the top 20% by lifetime value or revenue
    assert served.get(user_id=vips[0], n=3).get_json()["customer"]["vip"] is True
