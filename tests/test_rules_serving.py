"""Serving honours each placement's rules and campaigns, in cached answers too, in every process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.test_serving import Served, auth, trained, wait_for  # noqa: F401  (fixture)
from webapp import create_app


@pytest.fixture
def served(app, client, site, trained):  # noqa: F811
    shop, registry = trained
    return Served(app, client, site, shop, registry)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [i["item_id"] for i in response.get_json()["items"]]


def category_of(served, item_id: str) -> str:
    return next(i for i in served.shop.items if i["item_id"] == item_id)["category"]


def put(served, placement: str, body: dict):
    r = served.client.put(f"/v1/rules/{placement}", json=body, headers=auth(served.site))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_each_placement_gets_its_own_rules_else_the_default(served):
    user = served.customers(cluster=2)[0]
    before = ids(served.get(user_id=user, n=10, placement="home"))
    top_category = category_of(served, before[0])
    pin = next(i["item_id"] for i in served.shop.items if i["item_id"] not in before)
    put(served, "default", {"exclude_categories": [top_category]})
    put(served, "home", {"pinned": [pin], "max_per_category": 2})
    home = served.get(user_id=user, n=10, placement="home").get_json()["items"]
    assert home[0]["item_id"] == pin and home[0]["reason"] == "featured"
    per_category: dict[str, int] = {}
    for item in home:
        category = category_of(served, item["item_id"]).split("/")[0]
        per_category[category] = per_category.get(category, 0) + 1
    assert max(per_category.values()) <= 2
    # Placements without their own rules (and requests naming none) take the default's.
    for placement in ("cart", None):
        query = {"user_id": user, "n": 10} | ({"placement": placement} if placement else {})
        found = ids(served.get(**query))
        assert found and pin not in found
        assert all(category_of(served, i) != top_category for i in found)
    # Fallback lists too: an unknown visitor's trending answer.
    trending = served.get(anonymous_id="nobody-yet", n=10, placement="cart").get_json()
    assert trending["source"] == "trending" and trending["items"]
    assert all(category_of(served, i["item_id"]) != top_category for i in trending["items"])


@pytest.mark.parametrize(
    ("starts", "ends", "running"),
    [(-1, 1, True), (0, 0, True), (1, 3, False), (-3, -1, False), (None, None, True)],
)
def test_campaign_items_are_pinned_only_between_their_dates(served, starts, ends, running):
    today = datetime.now(UTC).date()

    def day(offset):
        return None if offset is None else (today + timedelta(days=offset)).isoformat()

    user = served.customers(cluster=0)[0]
    shown = ids(served.get(user_id=user, n=10, placement="home"))
    pin = next(i["item_id"] for i in served.shop.items if i["item_id"] not in shown)
    campaign = {"name": "Sale", "starts": day(starts), "ends": day(ends), "pinned": [pin]}
    put(served, "home", {"campaigns": [campaign]})
    found = ids(served.get(user_id=user, n=10, placement="home"))
    assert (found[0] == pin) is running
    assert (pin in found) is running


def test_a_change_reaches_a_second_process_cached_answers_within_seconds(served, app_config):
    """Two apps (two web processes) share the store and Redis: the second drops its cached
    answer when the first stores new rules, without a restart."""
    other = create_app(app_config)
    try:
        layer = other.extensions["ecrm_serving"]
        layer.state(served.site.site_id)
        assert layer.listening.wait(5)
        there = other.test_client()
        user = served.customers(cluster=1)[0]

        def answer():
            return there.get(
                "/v1/recommendations",
                query_string={"user_id": user, "n": 8, "placement": "home"},
                headers=auth(served.site),
            )

        first = ids(answer())
        cached = answer()
        assert cached.headers["X-Ecrm-Cache"] == "local" and ids(cached) == first
        banned = first[0]
        put(served, "home", {"exclude_items": [banned]})
        assert wait_for(lambda: banned not in ids(answer()), seconds=5.0)
        assert layer.sites.rules(served.site.site_id).version == 1
        # And back: removing the rules serves the item again (the defaults' entry).
        served.client.delete("/v1/rules/home", headers=auth(served.site))
        assert wait_for(lambda: banned in ids(answer()), seconds=5.0)
    finally:
        other.extensions["ecrm_serving"].close()
        other.extensions["ecrm"].engine.dispose()


def test_a_lost_message_is_caught_up_by_the_periodic_check(served, app_config):
    """Without the Redis message, the catalogue refresh compares the rules version."""
    from recommender import rule_store
    from recommender.rules import Rules

    layer = served.layer
    site_id = served.site.site_id
    layer.sites.rules(site_id)
    with served.engine.begin() as conn:  # stored without announcing it
        rule_store.save(conn, site_id, "home", Rules(max_price=1.0), by="test")
    layer.sites.reload_rules(site_id, if_moved=True)
    assert layer.sites.rules(site_id).rules_for("home").max_price == 1.0
    user = served.customers(cluster=1)[0]
    assert all(
        i["price"] is None or i["price"] <= 1.0
        for i in served.get(user_id=user, placement="home").get_json()["items"]
    )
