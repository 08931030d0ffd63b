"""The OpenAPI document: valid 3.1, true to the routes and answers; the docs page; examples."""

from __future__ import annotations

import gzip
import json
import re
import shlex
import subprocess
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from accounts import segments
from tests.conftest import ORIGIN, drain, make_event
from tests.portal_helpers import add_customer
from webapp import create_app
from webapp.openapi.document import build_document
from webapp.openapi.events import EXAMPLE_BATCH
from webapp.openapi.health import DOCS_PATH, JSON_PATH
from webapp.openapi.items import EXAMPLE_ITEM

METHODS = {"get", "post", "put", "patch", "delete"}
DOCUMENT_URI = "urn:ecrm:openapi"
# Flask's <item_id> and <path:item_id> are OpenAPI's {item_id}.
FLASK_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def public(rule: str) -> bool:
    return rule.startswith("/v1/") or rule in ("/healthz", "/readyz", DOCS_PATH)


@pytest.fixture
def document(client) -> dict:
    response = client.get(JSON_PATH)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def app_operations(app) -> set[tuple[str, str]]:
    return {
        (FLASK_PARAM.sub(r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if public(rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def documented_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def pointer_escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def response_validator(
    document: dict, path: str, method: str, status: int, media: str = "application/json"
) -> Draft202012Validator:
    """A JSON Schema validator for the documented body of one response."""
    response = document["paths"][path][method]["responses"][str(status)]
    pointer = f"/paths/{pointer_escape(path)}/{method}/responses/{status}"
    if "$ref" in response:
        pointer = response["$ref"].removeprefix("#")
    pointer += f"/content/{pointer_escape(media)}/schema"
    registry = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(document))
    return Draft202012Validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=registry)


def assert_documented(document, path, method, response) -> None:
    """The response's status is documented for the operation and its body fits the schema."""
    responses = document["paths"][path][method]["responses"]
    assert str(response.status_code) in responses, (path, method, response.status_code)
    validator = response_validator(document, path, method, response.status_code)
    errors = [e.message for e in validator.iter_errors(response.get_json())]
    assert not errors, (path, method, response.status_code, errors)


def property_names(document: dict, name: str) -> set[str]:
    """Every property a component schema declares, through allOf."""
    schema = document["components"]["schemas"][name]
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        if "$ref" in part:
            names |= property_names(document, part["$ref"].rsplit("/", 1)[-1])
        names |= set(part.get("properties", {}))
    return names


def server_auth(site) -> dict:
    return {"Authorization": f"Bearer {site.server_key}"}


# The document itself


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises OpenAPIValidationError with the failing path


def test_every_route_is_documented_and_every_documented_route_exists(app, document):
    routes, documented = app_operations(app), documented_operations(document)
    assert routes - documented == set(), "routes missing from the document"
    assert documented - routes == set(), "documented operations the app does not have"
    assert {"/v1/recommendations", "/v1/openapi.json", "/healthz", DOCS_PATH} <= {
        path for path, _ in routes
    }


def test_operations_say_how_to_authenticate_and_show_curl(document):
    schemes = document["components"]["securitySchemes"]
    for path, method in documented_operations(document):
        op = document["paths"][path][method]
        assert "security" in op, (path, method)
        for requirement in op["security"]:
            assert set(requirement) <= set(schemes), (path, method)
        assert op["operationId"] and op["summary"], (path, method)
        if path != DOCS_PATH:
            assert "curl" in op["x-codeSamples"][0]["source"], (path, method)
    assert schemes["writeKeyQuery"] == {
        **schemes["writeKeyQuery"],
        "in": "query",
        "name": "write_key",
    }
    assert schemes["serverKeyBearer"]["scheme"] == "bearer"


def test_server_url_comes_from_the_request_and_bytes_are_cached(client):
    first = client.get(JSON_PATH, base_url="https://api.shop.example")
    assert first.get_json()["servers"][0]["url"] == "https://api.shop.example"
    again = client.get(JSON_PATH, base_url="https://api.shop.example")
    assert again.data == first.data and again.headers["ETag"] == first.headers["ETag"]
    unchanged = client.get(
        JSON_PATH,
        base_url="https://api.shop.example",
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert unchanged.status_code == 304
    other = client.get(JSON_PATH, base_url="http://127.0.0.1:8000")
    assert other.get_json()["servers"][0]["url"] == "http://127.0.0.1:8000"
    assert other.headers["Access-Control-Allow-Origin"] == "*"


def test_limits_are_the_configured_ones(app):
    config = {**app.config, "MAX_BATCH_EVENTS": 100, "RECS_MAX_N": 20}
    document = build_document("http://localhost", config)
    schemas = document["components"]["schemas"]
    assert schemas["BatchRequest"]["properties"]["batch"]["maxItems"] == 100
    n = next(
        p for p in document["paths"]["/v1/recommendations"]["get"]["parameters"] if p["name"] == "n"
    )
    assert n["schema"]["maximum"] == 20


@pytest.mark.parametrize("hops", [1, 2])
def test_trusted_proxies_do_not_change_the_document(app_config, client, hops):
    # Behind proxies the document is the one served directly at the address the client asked
    # the proxies for: the setting changes where the client's address is read, nothing stated.
    proxied = create_app({**app_config, "TRUSTED_PROXIES": hops})
    try:
        behind = proxied.test_client().get(
            JSON_PATH,
            headers={
                "X-Forwarded-For": ", ".join(["203.0.113.5"] * hops),
                "X-Forwarded-Proto": ", ".join(["https"] * hops),
                "X-Forwarded-Host": ", ".join(["api.shop.example"] * hops),
            },
        )
        direct = client.get(JSON_PATH, base_url="https://api.shop.example")
        assert behind.status_code == direct.status_code == 200
        assert behind.get_json() == direct.get_json()
    finally:
        proxied.extensions["ecrm_serving"].close()
        proxied.extensions["ecrm"].engine.dispose()
        proxied.extensions["ecrm"].redis.close()
    config = dict(client.application.config)
    assert build_document("https://x", {**config, "TRUSTED_PROXIES": hops}) == build_document(
        "https://x", {**config, "TRUSTED_PROXIES": 0}
    )


# Real answers fit the documented schemas


def test_collector_answers_fit_the_document(client, site, document):
    ok = client.post("/v1/batch", json={"batch": [make_event()]}, auth=(site.write_key, ""))
    assert ok.status_code == 200
    assert_documented(document, "/v1/batch", "post", ok)

    partly = client.post(
        "/v1/batch",
        json={"batch": [make_event(1), make_event(2, timestamp="yesterday")]},
        auth=(site.write_key, ""),
    )
    assert partly.get_json()["rejected"][0]["field"] == "batch[1].timestamp"
    assert_documented(document, "/v1/batch", "post", partly)

    bad_json = client.post(
        "/v1/batch", data=b"{not json", content_type="text/plain", auth=(site.write_key, "")
    )
    assert bad_json.status_code == 400
    assert_documented(document, "/v1/batch", "post", bad_json)

    all_bad = client.post("/v1/track", json={"anonymousId": "a-1"}, auth=(site.write_key, ""))
    assert all_bad.status_code == 422
    assert_documented(document, "/v1/track", "post", all_bad)

    no_key = client.post("/v1/identify", json={"userId": "cust-1"})
    assert no_key.status_code == 401
    assert_documented(document, "/v1/identify", "post", no_key)


def test_catalogue_answers_fit_the_document(client, site, document):
    put = client.put("/v1/items/sku-0001", json=EXAMPLE_ITEM, headers=server_auth(site))
    assert_documented(document, "/v1/items/{item_id}", "put", put)
    got = client.get("/v1/items/sku-0001", headers=server_auth(site))
    assert got.status_code == 200
    assert_documented(document, "/v1/items/{item_id}", "get", got)
    assert set(got.get_json()) == property_names(document, "Item")
    missing = client.get("/v1/items/nope", headers=server_auth(site))
    assert missing.status_code == 404
    assert_documented(document, "/v1/items/{item_id}", "get", missing)
    invalid = client.put(
        "/v1/items/sku-0001", json={**EXAMPLE_ITEM, "price": -1}, headers=server_auth(site)
    )
    assert invalid.status_code == 422
    assert_documented(document, "/v1/items/{item_id}", "put", invalid)
    bulk = client.post("/v1/items", json={"items": []}, headers=server_auth(site))
    assert_documented(document, "/v1/items", "post", bulk)
    hidden = client.delete("/v1/items/sku-0001", headers=server_auth(site))
    assert_documented(document, "/v1/items/{item_id}", "delete", hidden)
    listed = client.get(
        "/v1/items", query_string={"include_hidden": "true", "limit": 1}, headers=server_auth(site)
    )
    assert listed.status_code == 200 and listed.get_json()["items"]
    assert_documented(document, "/v1/items", "get", listed)
    assert set(listed.get_json()) == property_names(document, "ItemList")
    bad = client.get("/v1/items", query_string={"limit": 0}, headers=server_auth(site))
    assert bad.status_code == 400
    assert_documented(document, "/v1/items", "get", bad)
    bad_id = client.get("/v1/items/%00", headers=server_auth(site))
    assert bad_id.status_code == 400
    assert_documented(document, "/v1/items/{item_id}", "get", bad_id)
    from_page = client.get(
        "/v1/items", headers={**server_auth(site), "Sec-Fetch-Site": "cross-site"}
    )
    assert from_page.status_code == 403
    assert_documented(document, "/v1/items", "get", from_page)


def test_health_answers_fit_the_document(client, document):
    assert_documented(document, "/healthz", "get", client.get("/healthz"))
    assert_documented(document, "/readyz", "get", client.get("/readyz"))


def test_recommendation_answers_fit_the_document(client, site, document):
    client.put("/v1/items/sku-0001", json=EXAMPLE_ITEM, headers=server_auth(site))
    ok = client.get(
        "/v1/recommendations",
        query_string={"anonymous_id": "a-1", "n": 5, "write_key": site.write_key},
        headers={"Origin": ORIGIN},
    )
    assert ok.status_code == 200, ok.get_json()
    assert_documented(document, "/v1/recommendations", "get", ok)
    body = ok.get_json()
    assert set(body) == property_names(document, "Recommendations")
    for item in body["items"]:
        assert set(item) == property_names(document, "RecommendedItem")
    for header in document["paths"]["/v1/recommendations"]["get"]["responses"]["200"]["headers"]:
        assert header in ok.headers

    bad = client.get(
        "/v1/recommendations",
        query_string={"anonymous_id": "a-1", "n": 0, "write_key": site.write_key},
        headers={"Origin": ORIGIN},
    )
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "n"
    assert_documented(document, "/v1/recommendations", "get", bad)

    similar = client.get("/v1/customers/cust-1/similar", headers=server_auth(site))
    assert similar.status_code == 200, similar.get_json()
    assert_documented(document, "/v1/customers/{user_id}/similar", "get", similar)
    assert set(similar.get_json()) == property_names(document, "SimilarCustomers")


# The docs page


def test_docs_page_renders_every_operation_without_scripts(client, document):
    response = client.get(DOCS_PATH)
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    for path, method in documented_operations(document):
        assert f'<code class="path">{path}</code>' in html, path
        assert f'id="op-{document["paths"][path][method]["operationId"]}"' in html
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in html, name
    assert "curl" in html and f'href="{JSON_PATH}"' in html
    assert "<script" not in html
    # Nothing is loaded from another host: only this server's own stylesheet.
    for url in re.findall(r'(?:src|href)="([^"#]+)"', html):
        assert not urlsplit(url).netloc, url
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    with client.get("/static/docs.css") as css:
        assert css.status_code == 200


def test_document_links_to_the_docs_page(document):
    assert document["externalDocs"]["url"].endswith(DOCS_PATH)
    assert DOCS_PATH in document["info"]["description"]


# The curl examples work as written


def _replay(client, source: str, keys: dict[str, str]):
    for name, value in keys.items():
        source = source.replace(f"${name}", value)
    argv = shlex.split(source.replace("\\\n", " "))
    assert argv[0] == "curl"
    method, headers, data, auth, url = "GET", {}, None, None, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, value = next(args).split(": ", 1)
            headers[name] = value
        elif arg == "-o":
            next(args)  # where curl writes the body
        elif arg == "-u":
            auth = tuple(next(args).split(":", 1))
        elif arg == "-d":
            data = next(args).encode()
        elif arg == "--data-binary":
            assert next(args) == "@batch.json.gz"
            data = gzip.compress(json.dumps(EXAMPLE_BATCH).encode())
        else:
            url = arg
    parts = urlsplit(url)
    return client.open(
        parts.path,
        method=method,
        query_string=parts.query,
        headers=headers,
        data=data,
        auth=auth,
    )


def test_curl_examples_work(app, client, site, document, db):
    keys = {"WRITE_KEY": site.write_key, "SERVER_KEY": site.server_key}
    add_customer(db, site.site_id, "cust-1001", email="minji@example.com")  # GET /v1/customers
    with db.begin() as conn:  # the members example's segment (its id is the store's to choose)
        segment_id = segments.save(conn, site.site_id, "Example", segments.Definition())
    stored = False
    order = {"put": 0, "post": 1, "get": 2, "delete": 3}
    # Writes first, the catalogue's before the others (the rules' example pins its item), then
    # reads and deletes; in a fixed order (a set's order changes with the hash seed).
    first = ("/v1/items",)
    for path, method in sorted(
        documented_operations(document),
        key=lambda o: (order[o[1]], not o[0].startswith(first), o[0]),
    ):
        if method in ("get", "delete") and not stored:
            drain(app)  # the examples' events stored: the customer examples read their customer
            stored = True
        for sample in document["paths"][path][method].get("x-codeSamples", []):
            source = sample["source"]
            if source.startswith("DATA="):  # the pixel: a shell pipeline builds the query
                setup, command = source.split("\n", 1)
                data = subprocess.run(
                    ["bash", "-c", f'{setup}\nprintf %s "$DATA"'],
                    env={"WRITE_KEY": site.write_key, "PATH": "/usr/bin:/bin"},
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                source = command.replace("$DATA", data)
            source = source.replace("/v1/segments/3/", f"/v1/segments/{segment_id}/")
            response = _replay(client, source, keys)
            documented = document["paths"][path][method]["responses"]
            success = min(int(status) for status in documented if status.startswith("2"))
            assert response.status_code == success, (path, method, response.get_data(as_text=True))
