"""The secret server key never works from another site's page; CORS answers only allowed origins.

DESIGN.md, "Identity and trust": a page holding the server key has published it, so every route
refuses it when the browser marks the request as coming from another site (``Origin``, or
``Sec-Fetch-Site`` other than ``same-origin``/``none``), and no answer is made readable by an
origin the calling site does not allow.
"""

from __future__ import annotations

import base64

import orjson
import pytest

from tests.conftest import ORIGIN, make_event
from tracking.sites import create_site

OTHER_ORIGIN = "https://other-shop.example"  # allowed by another site, not by ``site``

FROM_PAGES = [
    pytest.param({"Origin": ORIGIN}, id="origin-allowed"),
    pytest.param({"Origin": "https://evil.test"}, id="origin-foreign"),
    pytest.param({"Origin": "null"}, id="origin-null"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, id="cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site"}, id="same-site"),
    pytest.param({"Sec-Fetch-Site": "cross-site", "Origin": ORIGIN}, id="both"),
]
NOT_FROM_PAGES = [
    pytest.param({}, id="server"),
    pytest.param({"Sec-Fetch-Site": "none"}, id="address-bar"),
    pytest.param({"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}, id="same-origin"),
]


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def server_key_calls(site) -> list[tuple[str, str, dict]]:
    """(method, path, request kwargs) for every route, each with the server key."""
    key = site.server_key
    item = {"title": "Blue mug", "price": 12.5}
    pixel = base64.urlsafe_b64encode(orjson.dumps({**make_event(1), "writeKey": key})).decode()
    return [
        ("POST", "/v1/batch", {"json": {"batch": [make_event(1)]}, "headers": bearer(key)}),
        ("POST", "/v1/batch", {"json": {"batch": [make_event(1)], "writeKey": key}}),
        ("POST", "/v1/track", {"json": make_event(2), "auth": (key, "")}),
        ("POST", "/v1/identify", {"json": {"userId": "u-1", "writeKey": key}}),
        ("GET", f"/v1/pixel.gif?data={pixel}", {}),
        ("GET", "/v1/items", {"headers": bearer(key)}),
        ("POST", "/v1/items", {"json": {"items": [{**item, "item_id": "a"}]}, "auth": (key, "")}),
        ("PUT", "/v1/items/a", {"json": item, "headers": bearer(key)}),
        ("GET", "/v1/items/a", {"headers": bearer(key)}),
        ("DELETE", "/v1/items/a", {"headers": bearer(key)}),
        ("GET", "/v1/recommendations?user_id=cust-1", {"headers": bearer(key)}),
        ("GET", "/v1/items/a/similar", {"headers": bearer(key)}),
        ("GET", "/v1/customers/cust-1/similar", {"auth": (key, "")}),
    ]


def call(client, method: str, path: str, kwargs: dict, headers: dict):
    kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), **headers}}
    return client.open(path, method=method, **kwargs)


@pytest.mark.parametrize("headers", FROM_PAGES)
def test_the_server_key_is_refused_from_pages_on_every_route(client, site, headers):
    for method, path, kwargs in server_key_calls(site):
        response = call(client, method, path, kwargs, headers)
        assert response.status_code == 403, (method, path, response.get_data(as_text=True))
        error = response.get_json()["error"]
        expected = (
            "writeKey"
            if path.startswith("/v1/pixel") or "writeKey" in str(kwargs.get("json", ""))
            else "Authorization"
        )
        assert (error["code"], error["field"]) == ("server_key_in_browser", expected), path
        assert "write key" in error["reason"]
        assert "Access-Control-Allow-Origin" not in response.headers, path


@pytest.mark.parametrize("headers", NOT_FROM_PAGES)
def test_the_server_key_works_from_servers_and_the_services_own_pages(client, site, headers):
    for method, path, kwargs in server_key_calls(site):
        response = call(client, method, path, kwargs, headers)
        assert response.status_code == 200, (method, path, response.get_data(as_text=True))
        assert "Access-Control-Allow-Origin" not in response.headers, path


def test_write_key_answers_are_readable_only_by_the_sites_origins(app, client, site):
    create_site(app.extensions["ecrm"].engine, "Other shop", [OTHER_ORIGIN])
    query = {"write_key": site.write_key, "anonymous_id": "a-1"}
    ok = client.get("/v1/recommendations", query_string=query, headers={"Origin": ORIGIN})
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    # A bad parameter from an allowed origin: the site's own page may read why.
    bad = client.get(
        "/v1/recommendations", query_string={**query, "n": "0"}, headers={"Origin": ORIGIN}
    )
    assert bad.status_code == 400 and bad.headers["Access-Control-Allow-Origin"] == ORIGIN
    # Another site's origin, known to the service, reads nothing of this site's answers.
    for params in (query, {**query, "n": "0"}):
        other = client.get(
            "/v1/recommendations", query_string=params, headers={"Origin": OTHER_ORIGIN}
        )
        assert other.status_code == 403
        assert "Access-Control-Allow-Origin" not in other.headers
    sent = client.post(
        "/v1/batch",
        json={"batch": [make_event(1, timestamp="not a time")], "writeKey": site.write_key},
        headers={"Origin": OTHER_ORIGIN},
    )
    assert sent.status_code == 403 and "Access-Control-Allow-Origin" not in sent.headers
    mine = client.post(
        "/v1/batch",
        json={"batch": [make_event(1, event=7)], "writeKey": site.write_key},
        headers={"Origin": ORIGIN},
    )
    assert mine.status_code == 422 and mine.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize(
    "method, path, kwargs",
    [
        ("GET", "/v1/recommendations?write_key=wk_unknown&anonymous_id=a", {}),
        ("GET", "/v1/recommendations?anonymous_id=a", {}),
        ("POST", "/v1/batch", {"json": {"batch": [make_event(1)], "writeKey": "wk_unknown"}}),
        ("POST", "/v1/batch", {"data": b"{not json", "content_type": "text/plain"}),
    ],
)
def test_errors_before_any_site_is_known_hold_nothing_and_echo_no_origin(
    client, site, method, path, kwargs
):
    """No key or an unknown one: no site's data, so any page may read the reason (``*``),
    and the tracker drops the batch instead of retrying it forever; no origin is echoed."""
    response = client.open(path, method=method, headers={"Origin": OTHER_ORIGIN}, **kwargs)
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_preflights_cannot_leak(app, client, site):
    """A preflight carries no key and its answer no body: it says only that some site allows
    the origin (public: its pages load the tracker from here). The request that follows is
    checked against its own site, so passing the preflight unlocks nothing."""
    create_site(app.extensions["ecrm"].engine, "Other shop", [OTHER_ORIGIN])
    preflight = client.options(
        "/v1/batch",
        headers={
            "Origin": OTHER_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == OTHER_ORIGIN
    assert preflight.get_data() == b""
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    # ... then this site's keys from the other site's page: refused, unreadable.
    for auth in ((site.write_key, ""), (site.server_key, "")):
        response = client.post(
            "/v1/track", json=make_event(1), auth=auth, headers={"Origin": OTHER_ORIGIN}
        )
        assert response.status_code == 403
        assert "Access-Control-Allow-Origin" not in response.headers
    # The catalogue and the recommendation API answer no preflight at all.
    for path in ("/v1/items", "/v1/items/a", "/v1/recommendations"):
        response = client.options(path, headers={"Origin": ORIGIN})
        assert "Access-Control-Allow-Origin" not in response.headers, path
