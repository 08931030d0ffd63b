"""Personalisation off: popular items, labelled, at once; no cached answer left; no factors.

Serving runs the real model of tests/test_serving.py's shop over a real Redis; training runs on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

from accounts import privacy
from demo import ShopSpec, generate_shop
from recommender.answers import ModelBundle
from recommender.opt_outs import PERSONALISATION_CHANNEL
from recommender.serving import PERSONALISATION_OFF
from recommender.training import TrainSettings, train
from tests.conftest import store_events
from tests.test_serving import Served, trained, wait_for  # noqa: F401 (trained: a fixture)
from tracking.catalogue import upsert_items, validate_item

OFF = "I do not want recommendations based on what I view and buy."
ON = "Recommend products based on what I view and buy."


def _served(app, client, site, trained):  # noqa: F811
    shop, registry = trained
    return Served(app, client, site, shop, registry)


def _ids(body) -> list[str]:
    return [i["item_id"] for i in body["items"]]


def test_turning_personalisation_off_serves_popular_items_at_once(app, client, site, trained):  # noqa: F811
    served = _served(app, client, site, trained)
    redis = app.extensions["ecrm"].redis
    user = served.customers(cluster=2)[0]
    before = served.get(user_id=user, n=8)
    assert before.json["source"] == "personal"
    assert served.get(user_id=user, n=8).headers["X-Ecrm-Cache"] == "local"
    popular = served.get(anonymous_id="never-seen", n=8)  # trending for the unknown
    assert redis.keys(f"ecrm:recs:{site.site_id}:*:u:{user}")
    with served.engine.begin() as conn:
        assert privacy.set_personalisation(
            conn, site.site_id, user, False, source="portal", wording=OFF, redis_client=redis
        )
    # Every process hears it: this one's set changes as soon as the message arrives.
    assert wait_for(lambda: user in served.layer.sites.opted_out(site.site_id))
    off = served.get(user_id=user, n=8)
    assert off.status_code == 200
    assert off.json["source"] == PERSONALISATION_OFF
    state = served.layer.state(site.site_id)
    assert _ids(off.json) == [c[0] for c in state.popular[:8]]
    assert all(i["reason"] == "popular now" for i in off.json["items"])
    assert _ids(off.json) != _ids(before.json) and popular.json["source"] == "trending"
    # Their cached answers are gone from Redis, and their visitor key is never written again.
    assert redis.keys(f"ecrm:recs:{site.site_id}:*:u:{user}") == []
    served.get(user_id=user, n=4, placement="home")
    assert redis.keys(f"ecrm:recs:{site.site_id}:*:u:{user}") == []
    # Other customers are untouched.
    other = served.customers(cluster=2)[1]
    assert served.get(user_id=other, n=8).json["source"] == "personal"
    # The shop's backend asking for similar customers gets nothing personal either.
    similar = served.get(f"/v1/customers/{user}/similar", k=5, n=4)
    assert similar.json["source"] == PERSONALISATION_OFF and similar.json["customers"] == []
    # And back on: personal again.
    with served.engine.begin() as conn:
        privacy.set_personalisation(
            conn, site.site_id, user, True, source="portal", wording=ON, redis_client=redis
        )
    assert wait_for(lambda: user not in served.layer.sites.opted_out(site.site_id))
    assert served.get(user_id=user, n=8).json["source"] == "personal"


def test_a_lost_message_is_caught_up_by_reading_the_list_again(app, client, site, trained):  # noqa: F811
    served = _served(app, client, site, trained)
    user = served.customers(cluster=1)[0]
    assert served.get(user_id=user, n=5).json["source"] == "personal"
    with served.engine.begin() as conn:  # no Redis client: nobody is told
        privacy.set_personalisation(conn, site.site_id, user, False, source="api", wording=OFF)
    assert served.get(user_id=user, n=5).json["source"] == "personal"
    served.layer.sites.reload_opt_outs(site.site_id)  # what the refresh thread does
    assert served.get(user_id=user, n=5).json["source"] == PERSONALISATION_OFF
    # A malformed message on the channel changes nothing and breaks nothing.
    app.extensions["ecrm"].redis.publish(PERSONALISATION_CHANNEL, "garbage")
    app.extensions["ecrm"].redis.publish(PERSONALISATION_CHANNEL, f"{site.site_id}\t\t0")
    assert served.get(user_id=user, n=5).json["source"] == PERSONALISATION_OFF


def test_training_leaves_opted_out_customers_out(db, site, tmp_path):
    shop = generate_shop(ShopSpec(seed=5, n_customers=120, n_items=40, n_clusters=3, days=14))
    upsert_items(db, site.site_id, [validate_item(i) for i in shop.items])
    store_events(db, site.site_id, shop.events)
    customers = sorted({e["userId"] for e in shop.events if e.get("userId")})
    leaving, staying = customers[:3], customers[3]
    anonymous_of_leaving = {
        e["anonymousId"] for e in shop.events if e.get("userId") in leaving and e.get("anonymousId")
    }
    with db.begin() as conn:
        for user in leaving:
            privacy.set_personalisation(conn, site.site_id, user, False, source="api", wording=OFF)
    report = train(db, TrainSettings(site.site_id, tmp_path / "models", tune_seconds=0))
    assert report.promoted, report.failures
    bundle = ModelBundle.load(
        tmp_path / "models" / os.readlink(Path(tmp_path / "models" / "current"))
    )
    known = set(bundle.interactions.user_index)
    assert staying in known
    assert not known & set(leaving)
    # Their devices' anonymous events were stitched to them, so those are gone too.
    assert not known & {f"anon:{a}" for a in anonymous_of_leaving}
    assert set(bundle.purchases.user_index).isdisjoint(leaving)
