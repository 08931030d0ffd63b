"""The catalogue API for shop backends, authenticated with the site's secret server key.

Item ids may contain ``/`` (categories of ids such as ``music/kob``): the item routes take the
rest of the path, sent plain or percent-encoded (``%2F``), which the WSGI server decodes alike,
except a path ending in ``/similar``, which is the recommendation API's similar-items route.
"""

from __future__ import annotations

import orjson
import redis
from flask import Blueprint, jsonify, request
from werkzeug.routing import PathConverter

from tracking.activity import CATALOGUE_CHANNEL
from tracking.catalogue import (
    MAX_BULK_ITEMS,
    InvalidItem,
    get_item,
    hide_item,
    list_items,
    upsert_items,
    validate_item,
)
from webapp.auth import site_for_server
from webapp.body import read_body
from webapp.clients import get_engine, get_redis
from webapp.errors import ApiError
from webapp.openapi.catalogue import (
    BOOLEANS,
    MAX_BODY_BYTES,
    ItemPath,
    ListItemsQuery,
    encode_cursor,
)
from webapp.openapi.parse import parse_query, validate

bp = Blueprint("catalogue", __name__, url_prefix="/v1/items")


class ItemIdConverter(PathConverter):
    """The rest of the path, except one ending in ``/similar`` (the recommendation route's): an
    item URL and a similar-items URL never overlap, so each answers only its own methods."""

    regex = r"(?![^\x00]*/similar$)[^/].*?"


# Registered before the routes below are (deferred functions run in order).
bp.record_once(lambda state: state.app.url_map.converters.setdefault("item_id", ItemIdConverter))


def json_body():
    """The request's JSON body (at most MAX_BODY_BYTES), or a 4xx naming what is wrong."""
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiError(413, "body", f"larger than {MAX_BODY_BYTES} bytes", "too_large")
    mime = (request.mimetype or "").lower()
    if mime not in ("application/json", ""):
        raise ApiError(415, "Content-Type", "must be application/json", "unsupported_media")
    raw = read_body(MAX_BODY_BYTES)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ApiError(400, "body", f"not valid JSON ({e})", "invalid_json") from e


def _announce(site_id: int) -> None:
    """Tell every web process to reload this site's catalogue now (else within its refresh)."""
    try:
        get_redis().publish(CATALOGUE_CHANNEL, str(site_id))
    except redis.RedisError:
        pass  # the periodic refresh (CATALOGUE_REFRESH_SECONDS) still catches the change


def _invalid(e: InvalidItem) -> ApiError:
    return ApiError(422, e.field, e.reason, "invalid_item")


def _path_id(item_id: str) -> str:
    """The item id from the path; NUL and over-long ids are refused before any query."""
    return validate(ItemPath, {"item_id": item_id}).item_id


def _list_args() -> dict:
    args = parse_query(ListItemsQuery)
    return {
        "limit": args.limit,
        "after": args.cursor,  # the item id the cursor holds
        "query": args.q,
        "category": args.category,
        "include_hidden": BOOLEANS[args.include_hidden],
    }


@bp.get("")
def list_catalogue():
    """List or search the catalogue, a page at a time, in item_id order."""
    site = site_for_server()
    page, last = list_items(get_engine(), site.site_id, **_list_args())
    return jsonify(items=page, next_cursor=encode_cursor(last) if last is not None else None)


@bp.put("/<item_id:item_id>")
def put_item(item_id: str):
    """Create or replace one item."""
    site = site_for_server()
    item_id = _path_id(item_id)
    try:
        item = validate_item(json_body(), "body", item_id=item_id)
    except InvalidItem as e:
        raise _invalid(e) from e
    upsert_items(get_engine(), site.site_id, [item])
    _announce(site.site_id)
    return jsonify(success=True, item=get_item(get_engine(), site.site_id, item["item_id"]))


@bp.post("")
def bulk_upsert():
    """Upsert up to 1,000 items: ``{"items": [...]}``; all or nothing."""
    site = site_for_server()
    body = json_body()
    raw_items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(raw_items, list):
        raise ApiError(400, "items", "required: an array of items", "invalid_request")
    if len(raw_items) > MAX_BULK_ITEMS:
        raise ApiError(413, "items", f"more than {MAX_BULK_ITEMS} items", "too_large")
    try:
        rows = [validate_item(raw, f"items[{i}]") for i, raw in enumerate(raw_items)]
    except InvalidItem as e:
        raise _invalid(e) from e
    written = upsert_items(get_engine(), site.site_id, rows)
    _announce(site.site_id)
    return jsonify(success=True, upserted=written)


@bp.get("/<item_id:item_id>")
def read_item(item_id: str):
    """One item, hidden ones included (they say so)."""
    site = site_for_server()
    item_id = _path_id(item_id)
    item = get_item(get_engine(), site.site_id, item_id)
    if item is None:
        raise ApiError(404, "item_id", f"no item {item_id!r} in this site's catalogue", "not_found")
    return jsonify(item)


@bp.delete("/<item_id:item_id>")
def delete_item(item_id: str):
    """Hide an item: it stays in order history but is never recommended."""
    site = site_for_server()
    item_id = _path_id(item_id)
    if not hide_item(get_engine(), site.site_id, item_id):
        raise ApiError(404, "item_id", f"no item {item_id!r} in this site's catalogue", "not_found")
    _announce(site.site_id)
    return jsonify(success=True, item_id=item_id, hidden=True)
