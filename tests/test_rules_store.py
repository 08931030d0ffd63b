"""Merchandising rules as documents: parsing, campaigns by date, storage per placement."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from recommender import rule_store
from recommender.rules import Campaign, InvalidRules, Rules
from tracking.catalogue import upsert_items, validate_item

FULL = {
    "exclude_purchased": False,
    "rebuy_categories": ["Grocery"],
    "include_categories": ["Music", "Grocery"],
    "exclude_categories": ["Music/Rock"],
    "exclude_items": ["jazz-3"],
    "min_price": 5,
    "max_price": 50.5,
    "max_per_category": 2,
    "pinned": ["jazz-1"],
    "boosts": {"jazz-2": 1.5},
    "trait_constraints": [{"attribute": "age_restricted", "trait": "age", "minimum": 21}],
    "campaigns": [
        {
            "name": "Winter",
            "starts": "2026-12-01",
            "ends": "2026-12-24",
            "pinned": ["coffee-1"],
            "boosts": {"jazz-1": 2},
        }
    ],
}


def test_a_document_round_trips_and_defaults_fill_the_rest():
    rules = Rules.from_dict(FULL)
    assert rules.max_per_category == 2 and rules.min_price == 5.0
    assert rules.campaigns[0] == Campaign(
        "Winter", date(2026, 12, 1), date(2026, 12, 24), ("coffee-1",), {"jazz-1": 2.0}
    )
    again = Rules.from_dict(rules.to_dict())
    assert again == rules and again.fingerprint() == rules.fingerprint() != ""
    assert Rules.from_dict({}) == Rules() and Rules().fingerprint() == ""
    assert Rules.from_dict({"max_price": 10}).fingerprint() not in ("", rules.fingerprint())


BAD = [
    ([], "body"),
    ({"colour": "red"}, "colour"),
    ({"exclude_purchased": "yes"}, "exclude_purchased"),
    ({"min_price": -1}, "min_price"),
    ({"min_price": "5"}, "min_price"),
    ({"min_price": 20, "max_price": 10}, "max_price"),
    ({"max_per_category": 0}, "max_per_category"),
    ({"max_per_category": 1.5}, "max_per_category"),
    ({"pinned": "jazz-1"}, "pinned"),
    ({"pinned": ["jazz-1", ""]}, "pinned[1]"),
    ({"exclude_items": ["x" * 256]}, "exclude_items[0]"),
    ({"boosts": {"jazz-1": 0}}, "boosts.jazz-1"),
    ({"boosts": {"jazz-1": float("inf")}}, "boosts.jazz-1"),
    ({"trait_constraints": [{"attribute": "a", "trait": "age"}]}, "trait_constraints[0].minimum"),
    (
        {"campaigns": [{"pinned": ["a"], "starts": "2026-12-24", "ends": "2026-12-01"}]},
        "campaigns[0].ends",
    ),
    ({"campaigns": [{"pinned": ["a"], "starts": "24/12/2026"}]}, "campaigns[0].starts"),
    ({"campaigns": [{"name": "empty"}]}, "campaigns[0].pinned"),
]


@pytest.mark.parametrize(("document", "field"), BAD)
def test_bad_documents_name_the_field(document, field):
    with pytest.raises(InvalidRules) as refused:
        Rules.from_dict(document)
    assert refused.value.field == field


def test_campaigns_pin_and_boost_only_between_their_dates():
    rules = Rules.from_dict(FULL)
    before = rules.at(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    first_day = rules.at(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    last_day = rules.at(datetime(2026, 12, 24, 23, 59, tzinfo=UTC))
    after = rules.at(datetime(2026, 12, 25, 0, 0, tzinfo=UTC))
    assert before.pinned == after.pinned == ("jazz-1",)
    assert before.boosts == {"jazz-2": 1.5}
    for running in (first_day, last_day):
        assert running.pinned == ("jazz-1", "coffee-1")
        assert running.boosts == {"jazz-2": 1.5, "jazz-1": 2.0}
    assert first_day.fingerprint() != before.fingerprint()
    assert rules.next_change(datetime(2026, 11, 2, tzinfo=UTC)) == datetime(2026, 12, 1, tzinfo=UTC)
    assert rules.next_change(datetime(2026, 12, 2, tzinfo=UTC)) == datetime(
        2026, 12, 25, tzinfo=UTC
    )
    assert rules.next_change(datetime(2026, 12, 26, tzinfo=UTC)) is None


def test_a_rule_book_resolves_placements_and_caches_until_a_campaign_boundary():
    rules = Rules.from_dict(FULL)
    stamp = datetime(2026, 11, 1, tzinfo=UTC)
    book = rule_store.RuleBook(
        1,
        3,
        {
            "": rule_store.StoredRules("", Rules(max_price=100), 1, stamp, "api"),
            "home": rule_store.StoredRules("home", rules, 3, stamp, "api"),
        },
    )
    assert book.rules_for("cart").max_price == 100
    assert book.rules_for("default") == book.rules_for(None) == Rules(max_price=100)
    november, key = book.resolve("home", datetime(2026, 11, 30, tzinfo=UTC))
    assert november.pinned == ("jazz-1",)
    december, later_key = book.resolve("home", datetime(2026, 12, 3, tzinfo=UTC))
    assert december.pinned == ("jazz-1", "coffee-1") and later_key != key
    assert rule_store.RuleBook(2).resolve("home") == (Rules(), "")


@pytest.fixture
def shop(db, site):
    rows = [
        {"item_id": i, "title": i.title(), "category": c, "price": p}
        for i, c, p in [
            ("jazz-1", "Music/Jazz", 10),
            ("jazz-2", "Music/Jazz", 25),
            ("jazz-3", "Music/Jazz", 40),
            ("coffee-1", "Grocery/Coffee", 8),
            ("rock-1", "Music/Rock", 15),
        ]
    ]
    upsert_items(db, site.site_id, [validate_item(r) for r in rows])
    return site


def test_storage_per_placement_bumps_the_version_and_checks_the_catalogue(db, shop):
    site_id = shop.site_id
    assert rule_store.load(db, site_id).version == 0
    rules = Rules.from_dict(FULL)
    assert rule_store.check(db, site_id, rules) == []
    with db.begin() as conn:
        assert rule_store.save(conn, site_id, "default", Rules(max_price=30), by="api") == 1
        assert rule_store.save(conn, site_id, "home", rules, by="ann@shop.example") == 2
    book = rule_store.load(db, site_id)
    assert book.version == 2 and set(book.placements) == {"", "home"}
    assert book.placements["home"].rules == rules
    assert book.placements["home"].updated_by == "ann@shop.example"
    assert book.rules_for("cart") == Rules(max_price=30)
    shown = rule_store.as_json(book)
    assert shown["version"] == 2 and shown["placements"]["home"] == rules.to_dict()
    assert shown["default"]["max_price"] == 30 and shown["updated"]["default"]["by"] == "api"
    with db.begin() as conn:
        assert rule_store.remove(conn, site_id, "home") == 3
        assert rule_store.remove(conn, site_id, "home") is None
    assert rule_store.load(db, site_id).rules_for("home") == Rules(max_price=30)
    # Pins and boosts of unknown items are refused; unknown categories only warned of.
    with pytest.raises(InvalidRules) as refused:
        rule_store.check(db, site_id, Rules.from_dict({"campaigns": [{"pinned": ["nope"]}]}))
    assert refused.value.field == "campaigns[0].pinned"
    with pytest.raises(InvalidRules) as refused:
        rule_store.check(db, site_id, Rules(boosts={"nope": 2.0}))
    assert refused.value.field == "boosts"
    warnings = rule_store.check(db, site_id, Rules(exclude_categories=("Garden",)))
    assert warnings == ["exclude_categories: no item is in category 'Garden' (yet)"]
