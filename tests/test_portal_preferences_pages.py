"""/account/preferences and /account/privacy: the opt-in grid saved as consent records with the
words the customer saw (in their language), the personalisation toggle and "why am I seeing
these recommendations", checked end to end against the recommendation API with a real model.
"""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from accounts import consent, preferences
from accounts.messaging_schema import webhook_deliveries
from accounts.prefs_schema import consent_records
from accounts.webhooks import set_endpoint
from recommender.serving import PERSONALISATION_OFF
from tests.conftest import ORIGIN
from tests.portal_helpers import csrf_token, enter
from tests.test_serving import Served, trained  # noqa: F401 (trained: a fixture)
from tracking.identity import user_hash

PREFS = "/account/preferences"
PRIVACY = "/account/privacy"


def records(db, site_id, user_id="c1") -> list[dict]:
    with db.connect() as conn:
        query = (
            sa.select(consent_records)
            .where(consent_records.c.site_id == site_id, consent_records.c.user_id == user_id)
            .order_by(consent_records.c.id)
        )
        return [dict(r) for r in conn.execute(query).mappings()]


def save(client, boxes: dict[str, str], shown_locale="en", path=PREFS, **extra):
    token = csrf_token(client, path)
    return client.post(
        path, data={**boxes, "csrf_token": token, "shown_locale": shown_locale, **extra}
    )


def test_the_grid_shows_every_channel_and_topic_with_the_defaults(client, site):
    enter(client, site, "c1")
    page = client.get(PREFS).get_data(as_text=True)
    for channel in preferences.CHANNELS:
        for topic in ("offers", "recommendations", "order_updates", "newsletter"):
            assert f'name="{channel}:{topic}"' in page
    # Order updates are on until chosen; offers are off.
    assert re.search(r'name="email:order_updates" value="1" checked', page)
    assert not re.search(r'name="email:offers" value="1" checked', page)
    assert "You have not changed any of these yet" in page


def test_saving_the_grid_writes_a_record_per_change_with_the_words_shown(client, site, db):
    set_endpoint(db, site.site_id, "http://127.0.0.1:9/hooks", allow_private=True)
    enter(client, site, "c1")
    # Offers by email and SMS on; order updates by push off (the box left out); the rest as is.
    boxes = {"email:offers": "1", "sms:offers": "1", "email:order_updates": "1"}
    boxes |= {"sms:order_updates": "1"}
    response = save(client, boxes)
    assert response.status_code == 303 and response.headers["Location"].endswith("saved=1")
    made = {r["what"]: r for r in records(db, site.site_id)}
    assert set(made) == {"email:offers", "sms:offers", "push:order_updates"}
    assert made["email:offers"]["granted"] and not made["push:order_updates"]["granted"]
    assert {r["source"] for r in made.values()} == {"portal"}
    assert made["email:offers"]["wording"] == (
        "Tick a box to agree that we may write to you on that channel about that topic; "
        "clear it and we stop. Email: Offers and discounts"
    )
    assert made["push:order_updates"]["wording"].endswith(
        "Push notifications: Updates about your orders"
    )
    with db.connect() as conn:
        state = {p.what: p.granted for p in preferences.get_preferences(conn, site.site_id, "c1")}
        hooks = conn.execute(sa.select(webhook_deliveries)).all()
    assert state["email:offers"] and state["sms:offers"] and not state["push:order_updates"]
    assert [h.event_type for h in hooks] == ["preferences.updated"]
    sent = json.loads(hooks[0].body)["data"]
    assert sent["source"] == "portal" and sent["preferences"]["email:offers"] is True
    page = client.get(f"{PREFS}?saved=1").get_data(as_text=True)
    assert "Saved." in page and "Email: Offers and discounts" in page
    assert re.search(r'name="sms:offers" value="1" checked', page)
    # Saving the same choices again records nothing new.
    assert save(client, boxes).status_code == 303
    assert len(records(db, site.site_id)) == 3


def test_the_korean_page_records_the_korean_words(client, site, db):
    enter(client, site, "c1", locale="ko")
    page = client.get(PREFS).get_data(as_text=True)
    assert 'name="shown_locale" value="ko"' in page
    boxes = {f"{c}:order_updates": "1" for c in preferences.CHANNELS}  # the defaults kept
    assert save(client, {**boxes, "email:newsletter": "1"}, shown_locale="ko").status_code == 303
    (made,) = records(db, site.site_id)
    assert made["what"] == "email:newsletter"
    with_label = made["wording"]
    assert "이메일" in with_label and "뉴스레터" in with_label and "Email" not in with_label
    assert with_label in client.get(PREFS).get_data(as_text=True)


def test_the_words_follow_the_locale_the_form_was_shown_in(client, site, db):
    enter(client, site, "c1")  # an English page ...
    token = csrf_token(client, PREFS)
    response = client.post(
        PREFS,
        data={"email:newsletter": "1", "csrf_token": token, "shown_locale": "en"},
        headers={"Accept-Language": "ko"},  # ... posted back with another language preferred
    )
    assert response.status_code == 303
    made = {r["what"]: r["wording"] for r in records(db, site.site_id)}
    assert made["email:newsletter"].endswith("Email: Newsletter")


@pytest.mark.parametrize(
    "form, field",
    [
        ({"email:offers": "yes"}, "email:offers"),
        ({"email:offers": "1", "fax:offers": "1"}, "form"),
        ({"email:lottery": "1"}, "form"),
        ({"email:offers": "1", "shown_locale": "fr"}, "form"),
        ({"email:offers": "1", "shown_locale": ""}, "form"),
    ],
)
def test_bad_preference_forms_come_back_with_the_error_and_store_nothing(
    client, site, db, form, field
):
    enter(client, site, "c1")
    token = csrf_token(client, PREFS)
    response = client.post(PREFS, data={"shown_locale": "en", **form, "csrf_token": token})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f'id="{field}-error"' in page
    assert records(db, site.site_id) == []


def test_a_form_without_its_csrf_token_is_refused(client, site, db):
    enter(client, site, "c1")
    for path, form in ((PREFS, {"email:offers": "1"}), (PRIVACY, {"personalisation": "off"})):
        response = client.post(path, data={**form, "shown_locale": "en"})
        assert response.status_code == 400
    assert records(db, site.site_id) == []


def test_a_sites_own_topics_make_the_grid(client, site, db):
    with db.begin() as conn:
        preferences.set_topics(conn, site.site_id, [preferences.Topic("vip", "VIP evenings")])
    enter(client, site, "c1", locale="ko")
    page = client.get(PREFS).get_data(as_text=True)
    assert "VIP evenings" in page and 'name="email:offers"' not in page
    assert save(client, {"sms:vip": "1"}, shown_locale="ko").status_code == 303
    (made,) = records(db, site.site_id)
    assert made["what"] == "sms:vip" and made["wording"].endswith("문자 메시지: VIP evenings")


# -- privacy ------------------------------------------------------------------------------------


def test_privacy_without_a_model_explains_the_fallback(client, site, db):
    enter(client, site, "c1")
    page = client.get(PRIVACY).get_data(as_text=True)
    assert "Personalisation is on" in page
    assert "Why am I seeing these recommendations?" in page
    assert "<code>fallback</code>" in page and "there is no recommendation model yet" in page
    assert "No tracking consent has been recorded for you here" in page


def test_tracking_consent_records_are_listed(client, site, db):
    with db.begin() as conn:
        consent.record(
            conn, site.site_id, "c1", consent.TRACKING, True, source="api", wording="Track-Words"
        )
        consent.record(
            conn, site.site_id, "c2", consent.TRACKING, True, source="api", wording="Not-Yours"
        )
    enter(client, site, "c1")
    page = client.get(PRIVACY).get_data(as_text=True)
    assert "Track-Words" in page and "the shop" in page
    assert "Not-Yours" not in page


@pytest.mark.parametrize(
    "form, field",
    [
        ({"personalisation": "maybe", "shown_locale": "en"}, "personalisation"),
        ({"personalisation": "", "shown_locale": "en"}, "personalisation"),
        ({"personalisation": "off", "shown_locale": "xx"}, "personalisation"),
        ({"personalisation": "off" * 5000, "shown_locale": "en"}, "personalisation"),
    ],
)
def test_bad_privacy_forms_come_back_with_the_error(client, site, db, form, field):
    enter(client, site, "c1")
    token = csrf_token(client, PRIVACY)
    response = client.post(PRIVACY, data={**form, "csrf_token": token})
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    assert records(db, site.site_id) == []


def test_turning_personalisation_off_on_the_page_changes_what_the_widget_gets(
    app,
    client,
    site,
    db,
    trained,  # noqa: F811
):
    shop, registry = trained
    served = Served(app, client, site, shop, registry)
    user = served.customers(cluster=1)[0]

    def widget():
        """What the widget on the shop's page asks for: write key, verified user id, origin."""
        signed = user_hash(site.identity_secret, user)
        response = served.get(
            headers={"Origin": ORIGIN}, write_key=site.write_key, user_id=user, user_hash=signed
        )
        assert response.status_code == 200
        return response.json

    before = widget()
    assert before["source"] == "personal" and len(before["items"]) == 10

    portal = app.test_client()
    enter(portal, site, user, locale="ko")
    page = portal.get(PRIVACY).get_data(as_text=True)
    assert "<code>personal</code>" in page
    for item in before["items"][:3]:
        assert item["title"] in page and item["reason"] in page
    assert 'value="off"' in page

    response = save(portal, {"personalisation": "off"}, shown_locale="ko", path=PRIVACY)
    assert response.status_code == 303
    (made,) = records(db, site.site_id, user)
    assert made["what"] == "personalisation" and not made["granted"]
    assert made["source"] == "portal" and "추천" in made["wording"]

    # The widget's call (the recommendation API) now gets the popular items, labelled so ...
    after = widget()
    assert after["source"] == PERSONALISATION_OFF
    popular = [c[0] for c in served.layer.state(site.site_id).popular[:10]]
    assert [i["item_id"] for i in after["items"]] == popular
    assert [i["item_id"] for i in after["items"]] != [i["item_id"] for i in before["items"]]
    # ... and the page says so and shows those same items.
    page = portal.get(PRIVACY).get_data(as_text=True)
    assert f"<code>{PERSONALISATION_OFF}</code>" in page
    for item in after["items"][:3]:
        assert item["title"] in page
    assert 'value="on"' in page

    assert (
        save(portal, {"personalisation": "on"}, shown_locale="ko", path=PRIVACY).status_code == 303
    )
    assert widget()["source"] == "personal"
    assert [r["granted"] for r in records(db, site.site_id, user)] == [False, True]
