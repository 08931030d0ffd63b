"""Bad input against every collector route: each row asserts the status and the error field."""

from __future__ import annotations

import base64
import gzip
import json
import uuid

import orjson
import pytest

from tests.conftest import ORIGIN, count, drain
from tracking.schema import events, rejected_events
from tracking.sites import revoke_site

ROUTES = ["batch", "track", "page", "identify", "alias", "screen", "group", "pixel"]
BASE = {
    "track": {"event": "Product Viewed", "anonymousId": "a1", "properties": {"product_id": "p1"}},
    "page": {"anonymousId": "a1", "name": "Home", "properties": {"path": "/"}},
    "screen": {"anonymousId": "a1", "name": "Home"},
    "identify": {"userId": "u1", "anonymousId": "a1", "traits": {"email": "u1@example.test"}},
    "alias": {"previousId": "a1", "userId": "u1"},
    "group": {"userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}},
}


def dumps(value) -> bytes:
    """Compact JSON like a client's (stdlib: it can write integers past 64 bits)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def base_event(route: str) -> dict:
    kind = "track" if route in ("batch", "pixel") else route
    event = {"type": kind, "messageId": str(uuid.uuid4()), **BASE[kind]}
    event["properties"] = dict(event.get("properties") or {})
    return event


def prefix(route: str) -> str:
    return {"batch": "batch[0]", "pixel": "data"}.get(route, "body")


def send(client, site, route, event=None, *, raw=None, key="site", headers=None, encoding=None):
    """Send one event (or raw bytes) to a route, the way a client of that route would."""
    write_key = site.write_key if key == "site" else key
    headers = dict(headers or {})
    if route == "pixel":
        body = dict(event or {})
        if write_key:
            body["writeKey"] = write_key
        data = raw if raw is not None else dumps(body)
        query = base64.urlsafe_b64encode(data).decode().rstrip("=")
        return client.get(f"/v1/pixel.gif?data={query}", headers=headers)
    if raw is None:
        raw = dumps({"batch": [event]} if route == "batch" else event)
    if encoding == "gzip":
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    headers.setdefault("Content-Type", "application/json")
    auth = (write_key, "") if write_key else None
    return client.post(f"/v1/{route}", data=raw, headers=headers, auth=auth)


def sized_event(route: str, size: int) -> dict:
    """An event whose JSON (as the server measures it) is exactly ``size`` bytes."""
    event = base_event(route)
    event["properties"]["pad"] = ""
    current = len(orjson.dumps(event))
    event["properties"]["pad"] = "x" * (size - current)
    assert len(orjson.dumps(event)) == size
    return event


def assert_error(response, status: int, field: str):
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert body["success"] is False
    assert body["error"]["field"] == field, body
    assert body["error"]["reason"]
    assert body["error"]["message"].startswith(field)


# (name, mutate(event) -> event or None to drop a field, status, field suffix or absolute field)
def _set(**fields):
    def mutate(event):
        for name, value in fields.items():
            if "." in name:
                outer, inner = name.split(".", 1)
                event[outer][inner] = value
            else:
                event[name] = value
        return event

    return mutate


def _drop(*names):
    def mutate(event):
        for name in names:
            event.pop(name, None)
        return event

    return mutate


def _nest(depth):
    def mutate(event):
        node = "leaf"
        for _ in range(depth):
            node = {"n": node}
        event["properties"]["deep"] = node
        return event

    return mutate


EVENT_ROWS = [
    ("properties not an object", _set(properties="red"), 422, ".properties"),
    ("context not an object", _set(context=[1, 2]), 422, ".context"),
    ("userId an object", _set(userId={"id": 1}), 422, ".userId"),
    ("anonymousId a boolean", _set(anonymousId=True), 422, ".anonymousId"),
    ("messageId a number", _set(messageId=12), 422, ".messageId"),
    ("messageId too long", _set(messageId="m" * 101), 422, ".messageId"),
    ("timestamp a number", _set(timestamp=1700000000), 422, ".timestamp"),
    ("timestamp not ISO 8601", _set(timestamp="yesterday"), 422, ".timestamp"),
    ("timestamp far future", _set(timestamp="2100-01-01T00:00:00Z"), 422, ".timestamp"),
    ("timestamp before 2000", _set(timestamp="1970-01-01T00:00:00Z"), 422, ".timestamp"),
    ("sentAt invalid", _set(sentAt="2026-13-45"), 422, ".sentAt"),
    ("timestamp in year 0 in UTC", _set(timestamp="0001-01-01T00:00:00+01:00"), 422, ".timestamp"),
    ("sentAt in year 10000 in UTC", _set(sentAt="9999-12-31T23:00:00-05:00"), 422, ".sentAt"),
    ("name with a control character", _set(name="Home\x1b[2J"), 422, ".name"),
    ("event a number", _set(event=7), 422, ".event"),
    ("NUL inside a string", _set(**{"properties.name": "a\u0000b"}), 422, ".properties.name"),
    (
        "NUL inside a key",
        _set(**{"properties.list": [1, {"a\u0000": 1}]}),
        422,
        ".properties.list[1]",
    ),
    ("NUL in a list", _set(**{"properties.list": ["ok", "\u0000"]}), 422, ".properties.list[1]"),
    ("huge number", _set(**{"properties.price": 1e30}), 422, ".properties.price"),
    ("huge negative integer", _set(**{"properties.qty": -(10**19)}), 422, ".properties.qty"),
    ("deep nesting", _nest(30), 422, None),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "name,mutate,status,suffix", EVENT_ROWS, ids=[row[0] for row in EVENT_ROWS]
)
def test_bad_event_fields(client, site, route, name, mutate, status, suffix):
    event = mutate(base_event(route))
    response = send(client, site, route, event)
    if suffix is None:  # deep nesting: the field is the path where the limit was crossed
        assert response.status_code == status
        assert response.get_json()["error"]["field"].startswith(prefix(route) + ".properties.deep")
    else:
        assert_error(response, status, prefix(route) + suffix)


@pytest.mark.parametrize("route", ROUTES)
def test_missing_identity(client, site, route):
    event = _drop("anonymousId", "userId", "previousId")(base_event(route))
    field = ".previousId" if route == "alias" else ".userId"
    assert_error(send(client, site, route, event), 422, prefix(route) + field)


@pytest.mark.parametrize("route", ["batch", "track", "pixel"])
def test_track_without_event_name(client, site, route):
    event = _drop("event")(base_event(route))
    assert_error(send(client, site, route, event), 422, prefix(route) + ".event")


BODY_ROWS = [
    ("malformed JSON", b'{"batch": [', 400, "body"),
    ("JSON array body", b"[1, 2]", 400, "body"),
    ("JSON string body", b'"hello"', 400, "body"),
    ("empty body", b"", 400, "body"),
    ("number too big for a double", b'{"userId": "u", "x": 1e400}', 400, "body"),
    ("lone surrogate escape", b'{"userId": "u\\ud800"}', 400, "body"),
    ("nesting past the parser's limit", b'{"a":' * 2000 + b"1" + b"}" * 2000, 400, "body"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name,raw,status,field", BODY_ROWS, ids=[r[0] for r in BODY_ROWS])
def test_bad_bodies(client, site, route, name, raw, status, field):
    if route == "pixel":
        # A pixel carries its write key inside the JSON, so unreadable JSON has no key: 400.
        response = send(client, site, route, raw=raw)
        if raw == b"":
            assert_error(response, 400, "data")
            return
        assert_error(response, status, field)
        return
    assert_error(send(client, site, route, raw=raw), status, field)


@pytest.mark.parametrize("route", ROUTES)
def test_write_keys(client, site, app, route):
    assert_error(send(client, site, route, base_event(route), key=None), 401, "writeKey")
    assert_error(send(client, site, route, base_event(route), key="wk_nope"), 401, "writeKey")
    revoke_site(app.extensions["ecrm"].engine, site.write_key)
    assert_error(send(client, site, route, base_event(route)), 401, "writeKey")


@pytest.mark.parametrize("route", [r for r in ROUTES if r != "pixel"])
def test_disallowed_origin(client, site, route):
    response = send(client, site, route, base_event(route), headers={"Origin": "https://evil.test"})
    assert_error(response, 403, "Origin")
    assert "Access-Control-Allow-Origin" not in response.headers
    ok = send(client, site, route, base_event(route), headers={"Origin": ORIGIN})
    assert ok.status_code == 200, ok.get_json()
    assert ok.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Access-Control-Allow-Credentials" not in ok.headers
    assert "Origin" in ok.headers.get("Vary", "")


@pytest.mark.parametrize("route", [r for r in ROUTES if r != "pixel"])
def test_unsupported_media(client, site, route):
    event = base_event(route)
    raw = orjson.dumps({"batch": [event]} if route == "batch" else event)
    response = send(client, site, route, raw=raw, headers={"Content-Type": "application/xml"})
    assert_error(response, 415, "Content-Type")
    response = send(client, site, route, raw=raw, headers={"Content-Encoding": "br"})
    assert_error(response, 415, "Content-Encoding")


@pytest.mark.parametrize("route", [r for r in ROUTES if r != "pixel"])
def test_text_plain_and_gzip_accepted(client, site, route):
    event = base_event(route)
    raw = orjson.dumps({"batch": [event]} if route == "batch" else event)
    plain = send(client, site, route, raw=raw, headers={"Content-Type": "text/plain"})
    assert plain.status_code == 200 and plain.get_json() == {"success": True}
    event["messageId"] = str(uuid.uuid4())
    zipped = send(client, site, route, event, encoding="gzip")
    assert zipped.status_code == 200 and zipped.get_json() == {"success": True}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("delta,status", [(-1, 200), (0, 200), (1, 413)])
def test_event_size_limit(client, site, route, delta, status):
    size = 32 * 1024 + delta
    if route == "pixel":
        # The pixel's JSON includes the writeKey, which counts towards the event.
        event = sized_event(route, size - len(orjson.dumps({"writeKey": site.write_key})) + 1)
        event["writeKey"] = site.write_key
        assert len(orjson.dumps(event)) == size
        response = send(client, site, route, event, key=None)
    else:
        response = send(client, site, route, sized_event(route, size))
    if status == 200:
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    else:
        assert_error(response, 413, prefix(route) if route != "pixel" else "data")


@pytest.mark.parametrize("delta,status", [(-1, 200), (0, 200), (1, 413)])
@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_batch_byte_limit(client, site, delta, status, encoding):
    # The padded event itself would exceed 32 KB; spread the padding instead.
    total = 500 * 1024 + delta
    events_ = [base_event("batch") for _ in range(20)]
    for e in events_:
        e["properties"]["pad"] = ""
    base = len(orjson.dumps({"batch": events_}))
    per, rest = divmod(total - base, 20)
    for i, e in enumerate(events_):
        e["properties"]["pad"] = "x" * (per + (1 if i < rest else 0))
    raw = orjson.dumps({"batch": events_})
    assert len(raw) == total
    response = send(client, site, "batch", raw=raw, encoding=encoding)
    if status == 200:
        assert response.status_code == 200, response.get_json()
    else:
        assert_error(response, 413, "body")


@pytest.mark.parametrize("n,status", [(2499, 200), (2500, 200), (2501, 413)])
def test_batch_count_limit(client, site, n, status):
    events_ = [{"type": "page", "messageId": f"m{i}", "anonymousId": "a"} for i in range(n)]
    response = send(client, site, "batch", raw=orjson.dumps({"batch": events_}))
    if status == 200:
        assert response.status_code == 200, response.get_json()
    else:
        assert_error(response, 413, "batch")


@pytest.mark.parametrize("route", [r for r in ROUTES if r != "pixel"])
def test_gzip_bomb(client, site, route):
    # 50 MB of zeros compress to ~50 KB: refused while inflating, without using the memory.
    bomb = gzip.compress(b'{"a": "' + b"0" * (50 * 1024 * 1024) + b'"}', compresslevel=9)
    assert len(bomb) < 100 * 1024
    response = send(client, site, route, raw=bomb, headers={"Content-Encoding": "gzip"})
    assert_error(response, 413, "body")


def test_corrupt_gzip(client, site):
    response = send(client, site, "track", raw=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert_error(response, 400, "Content-Encoding")


def test_batch_shapes(client, site):
    assert_error(send(client, site, "batch", raw=b'{"batch": {}}'), 400, "batch")
    assert_error(send(client, site, "batch", raw=b'{"batch": []}'), 400, "batch")
    assert_error(send(client, site, "batch", raw=b'{"events": []}'), 400, "batch")
    response = send(client, site, "batch", raw=b'{"batch": ["x"]}')
    assert_error(response, 422, "batch[0]")
    response = send(client, site, "batch", raw=b'{"batch": [{"type": "nope", "userId": "u"}]}')
    assert_error(response, 422, "batch[0].type")


def test_batch_sent_at_invalid(client, site):
    raw = orjson.dumps({"batch": [base_event("batch")], "sentAt": "soon"})
    assert_error(send(client, site, "batch", raw=raw), 422, "sentAt")


def test_partial_batch_lists_rejections_by_index(client, site, app):
    good = [base_event("batch") for _ in range(3)]
    bad = _set(timestamp="nope")(base_event("batch"))
    raw = orjson.dumps({"batch": [good[0], bad, good[1], good[2]]})
    response = send(client, site, "batch", raw=raw)
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True
    assert body["rejected"] == [
        {"index": 1, "field": "batch[1].timestamp", "reason": "not an ISO 8601 time"}
    ]
    drain(app)
    engine = app.extensions["ecrm"].engine
    assert count(engine, events) == 3
    assert count(engine, rejected_events) == 1


def test_every_refused_event_is_kept_with_its_reason(client, site, app):
    for route in ("track", "identify", "pixel"):
        send(client, site, route, _set(timestamp="never")(base_event(route)))
    drain(app)
    engine = app.extensions["ecrm"].engine
    assert count(engine, rejected_events, rejected_events.c.reason == "not an ISO 8601 time") == 3


def test_rate_limit_answers_429_with_retry_after(client, site, app):
    from tracking.sites import create_site

    limited, _ = create_site(app.extensions["ecrm"].engine, "Slow shop", [], rate_limit=1)
    statuses = []
    for _ in range(5):
        response = send(client, limited, "track", base_event("track"))
        statuses.append(response.status_code)
    assert statuses[:2] == [200, 200]
    assert 429 in statuses
    limited_response = send(client, limited, "track", base_event("track"))
    assert_error(limited_response, 429, "writeKey")
    assert limited_response.headers["Retry-After"] == "1"
    assert limited_response.get_json()["retry"] is True


def test_unknown_route_and_method_are_json(client):
    response = client.get("/v1/nothing-here")
    assert_error(response, 404, "path")
    response = client.get("/v1/batch")
    assert_error(response, 405, "method")
