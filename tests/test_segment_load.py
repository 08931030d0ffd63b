"""Customers' segments load off the request path (issue 14 at 1M customers: 5-10 s to read): the
first request of a site is answered while the load is still under way, without VIP treatment or
the customer's segment, and once it is done the next request is a VIP's. No timings: the load is
held on an Event the test releases."""

from __future__ import annotations

import threading

import pytest

from analytics import customer_segments
from tests.test_serving import Served, auth, trained  # noqa: F401  (fixture)
from tests.test_vip_serving import ids, not_recommended, put, scored
from webapp import create_app


@pytest.fixture
def served(app, client, site, trained):  # noqa: F811
    shop, registry = trained
    return Served(app, client, site, shop, registry)


@pytest.fixture
def held_load(monkeypatch):
    """Segment loads that start, then wait for ``release`` (in apps created from now on)."""
    started, release = threading.Event(), threading.Event()
    real = customer_segments.load

    def load(engine, site_id):
        started.set()
        assert release.wait(30), "the test never released the load"
        return real(engine, site_id)

    monkeypatch.setattr(customer_segments, "load", load)
    yield started, release
    release.set()  # never leave a loader thread waiting


def test_the_first_request_does_not_wait_for_the_segments(served, app_config, held_load):
    started, release = held_load
    customer = served.customers(cluster=1)[0]
    scored(served, vip=[customer])
    pin = not_recommended(served, [customer])
    put(served, "default", {"vip": {"pinned": [pin]}})
    other = create_app(app_config)  # a fresh web process: nothing loaded yet
    try:
        sites = other.extensions["ecrm_serving"].sites
        there = other.test_client()

        def answer():
            r = there.get(
                "/v1/recommendations",
                query_string={"user_id": customer, "n": 10},
                headers=auth(served.site),
            )
            assert r.status_code == 200, r.get_json()
            return r

        first = answer()  # returns although the load cannot finish until released
        assert started.wait(10)  # the load began, in another thread
        assert not release.is_set() and sites.segments(served.site.site_id) is None
        assert first.get_json()["customer"] is None and pin not in ids(first)
        loading = sites.load_segments(served.site.site_id)
        assert not loading.is_set()
        assert sites.load_segments(served.site.site_id) is loading  # one load, not one a request

        release.set()
        assert loading.wait(10)
        now = answer()
        assert now.get_json()["customer"] == {"segment": "Champions", "vip": True}
        assert ids(now)[0] == pin
    finally:
        other.extensions["ecrm_serving"].close()
        other.extensions["ecrm"].engine.dispose()


def test_a_failed_load_serves_without_vips_and_is_tried_again(served, monkeypatch):
    """A load that fails (SQL gone, say) leaves answers without VIP treatment; a later request
    starts another one after the retry pause, and that one serves the segments."""
    from recommender import site_holdings

    customer = served.customers(cluster=2)[0]
    scored(served, vip=[customer])
    sites, site_id = served.layer.sites, served.site.site_id
    sites.segments(site_id, wait=True)
    source, calls = sites.segment_source, []

    def broken(engine, site_id):
        calls.append(site_id)
        raise RuntimeError("the database went away")

    failing = type(source)(broken, source.marker, source.channel)
    monkeypatch.setattr(sites, "segment_source", failing)
    sites._segments.clear()
    sites._segment_loads.clear()
    assert sites.load_segments(site_id).wait(10)
    assert served.get(user_id=customer, n=5).get_json()["customer"] is None
    assert sites.load_segments(site_id).is_set() and calls == [site_id]  # not again at once
    monkeypatch.setattr(sites, "segment_source", source)
    monkeypatch.setattr(site_holdings, "SEGMENT_RETRY_SECONDS", 0.0)
    assert sites.load_segments(site_id).wait(10)
    answer = served.get(user_id=customer, n=5).get_json()
    assert answer["customer"] == {"segment": "Champions", "vip": True}
