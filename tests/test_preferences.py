"""Communication preferences and consent records (accounts.preferences, accounts.consent).

On SQLite and PostgreSQL: defaults until a customer chooses, one append-only record per change
with its source and wording, per-site topics, bad input named by field.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from accounts import consent, preferences, privacy
from accounts.preferences import PreferenceError, Topic
from accounts.prefs_schema import consent_records
from tracking.sites import create_site

WORDING = "Send me offers by email. You can change this at any time."


def _state(conn, site_id, user_id) -> dict[str, tuple[bool, bool]]:
    return {
        p.what: (p.granted, p.chosen) for p in preferences.get_preferences(conn, site_id, user_id)
    }


def test_defaults_until_chosen_then_one_record_per_change(db, site):
    with db.begin() as conn:
        state = _state(conn, site.site_id, "c-1")
        # Every channel x the default topics; marketing off, order updates on, nothing chosen.
        assert len(state) == len(preferences.CHANNELS) * len(preferences.DEFAULT_TOPICS)
        assert state["email:offers"] == (False, False)
        assert state["sms:order_updates"] == (True, False)
        ids = preferences.set_preferences(
            conn,
            site.site_id,
            "c-1",
            {"email:offers": True, "sms:order_updates": True, "push:newsletter": False},
            source="portal",
            wording=WORDING,
        )
        # Only the choice that changed is recorded (the other two already were so).
        assert len(ids) == 1
        assert _state(conn, site.site_id, "c-1")["email:offers"] == (True, True)
        assert preferences.allows(conn, site.site_id, "c-1", "email", "offers")
        preferences.set_preferences(
            conn, site.site_id, "c-1", {"email:offers": False}, source="console", wording="Off."
        )
        assert not preferences.allows(conn, site.site_id, "c-1", "email", "offers")
        history = consent.history(conn, site.site_id, "c-1")
    assert [(r.what, r.granted, r.source, r.wording) for r in history] == [
        ("email:offers", False, "console", "Off."),
        ("email:offers", True, "portal", WORDING),
    ]
    assert history[0].at >= history[1].at and history[0].at.tzinfo is not None


def test_choices_are_per_customer_and_per_site(app, db, site):
    other, _ = create_site(db, "Other shop", [])
    with db.begin() as conn:
        preferences.set_preferences(
            conn, site.site_id, "c-1", {"email:offers": True}, source="api", wording=WORDING
        )
        assert _state(conn, site.site_id, "c-2")["email:offers"] == (False, False)
        assert _state(conn, other.site_id, "c-1")["email:offers"] == (False, False)
        assert consent.history(conn, other.site_id, "c-1") == []


def test_a_site_sets_its_own_topics(db, site):
    with db.begin() as conn:
        preferences.set_topics(
            conn,
            site.site_id,
            [Topic("restock", "Back in stock", False), Topic("receipts", "Receipts", True)],
        )
        assert [t.topic for t in preferences.topics(conn, site.site_id)] == ["restock", "receipts"]
        state = _state(conn, site.site_id, "c-1")
        names = ("restock", "receipts")
        assert set(state) == {f"{c}:{t}" for c in preferences.CHANNELS for t in names}
        assert state["push:receipts"] == (True, False)
        with pytest.raises(PreferenceError) as e:
            preferences.set_preferences(
                conn, site.site_id, "c-1", {"email:offers": True}, source="api", wording=WORDING
            )
        assert e.value.field == "email:offers" and "no topic" in e.value.reason


@pytest.mark.parametrize(
    ("changes", "source", "wording", "field"),
    [
        ({"fax:offers": True}, "portal", WORDING, "fax:offers"),
        ({"email:offers": "yes"}, "portal", WORDING, "email:offers"),
        ({"offers": True}, "portal", WORDING, "offers"),
        ({}, "portal", WORDING, "preferences"),
        ({"email:offers": True}, "browser", WORDING, "source"),
        ({"email:offers": True}, "portal", "", "wording"),
        ({"email:offers": True}, "portal", "x" * (consent.MAX_WORDING + 1), "wording"),
    ],
)
def test_bad_preferences_are_refused_naming_the_field(db, site, changes, source, wording, field):
    with db.begin() as conn:
        with pytest.raises((PreferenceError, consent.ConsentError)) as e:
            preferences.set_preferences(
                conn, site.site_id, "c-1", changes, source=source, wording=wording
            )
        assert e.value.field == field
        assert conn.execute(sa.select(sa.func.count()).select_from(consent_records)).scalar() == 0


@pytest.mark.parametrize(
    ("topics", "field"),
    [
        ([], "topics"),
        ([Topic("Offers!", "x")], "topics[0].topic"),
        ([Topic("a", "x"), Topic("a", "y")], "topics[1].topic"),
        ([Topic("a", "")], "topics[0].label"),
    ],
)
def test_bad_topic_lists_are_refused(db, site, topics, field):
    with db.begin() as conn, pytest.raises(PreferenceError) as e:
        preferences.set_topics(conn, site.site_id, topics)
    assert e.value.field == field


def test_personalisation_choice_is_a_consent_record_and_a_flag(db, site):
    with db.begin() as conn:
        assert privacy.personalisation_enabled(conn, site.site_id, "c-1")
        assert privacy.set_personalisation(
            conn, site.site_id, "c-1", False, source="portal", wording="Do not personalise."
        )
        assert not privacy.personalisation_enabled(conn, site.site_id, "c-1")
        assert privacy.personalisation_enabled(conn, site.site_id, "c-2")
        # The same choice again: recorded (the customer confirmed it), nothing changed.
        assert not privacy.set_personalisation(
            conn, site.site_id, "c-1", False, source="portal", wording="Do not personalise."
        )
        assert privacy.set_personalisation(
            conn, site.site_id, "c-1", True, source="console", wording="Personalise again."
        )
        assert privacy.personalisation_enabled(conn, site.site_id, "c-1")
        history = consent.history(conn, site.site_id, "c-1", [consent.PERSONALISATION])
        with pytest.raises(consent.ConsentError) as e:
            privacy.set_personalisation(conn, site.site_id, "c-1", "no", source="api", wording="x")
        assert e.value.field == "enabled"
    assert [(r.granted, r.source) for r in history] == [
        (True, "console"),
        (False, "portal"),
        (False, "portal"),
    ]


def test_tracking_consent_is_recorded_with_its_history(db, site):
    with db.begin() as conn:
        consent.record(
            conn, site.site_id, "c-1", consent.TRACKING, True, source="import", wording="Cookies ok"
        )
        consent.record(
            conn, site.site_id, "c-1", consent.TRACKING, False, source="portal", wording="No."
        )
        assert consent.current(conn, site.site_id, "c-1")[consent.TRACKING].granted is False
        assert len(consent.history(conn, site.site_id, "c-1", [consent.TRACKING])) == 2


def test_migrations_205_and_7_create_the_tables_on_an_existing_store(db, site):
    from accounts.prefs_schema import DATA_TABLES
    from tracking.schema import personalisation_opt_outs, schema_migrations
    from webapp.database import upgrade

    with db.begin() as conn:
        for table in (*DATA_TABLES, personalisation_opt_outs):
            conn.execute(sa.text(f"DROP TABLE {table.name}"))
        conn.execute(schema_migrations.delete().where(schema_migrations.c.version.in_([7, 205])))
    assert upgrade(db) == [7, 205]
    assert upgrade(db) == []
    with db.begin() as conn:
        assert sa.inspect(conn).has_table("inquiry_messages")
        privacy.set_personalisation(conn, site.site_id, "c-1", False, source="api", wording="Off")
        assert not privacy.personalisation_enabled(conn, site.site_id, "c-1")
