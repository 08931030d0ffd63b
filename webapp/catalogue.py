"""The catalogue API for shop backends, authenticated with the site's secret server key."""

from __future__ import annotations

import orjson
import redis
from flask import Blueprint, jsonify, request

from tracking.activity import CATALOGUE_CHANNEL
from tracking.catalogue import (
    MAX_BULK_ITEMS,
    InvalidItem,
    get_item,
    hide_item,
    upsert_items,
    validate_item,
)
from webapp.auth import site_for_server
from webapp.clients import get_engine, get_redis
from webapp.errors import ApiError

bp = Blueprint("catalogue", __name__, url_prefix="/v1/items")

MAX_BODY_BYTES = 4 * 1024 * 1024


def _json_body():
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise ApiError(413, "body", f"larger than {MAX_BODY_BYTES} bytes", "too_large")
    mime = (request.mimetype or "").lower()
    if mime not in ("application/json", ""):
        raise ApiError(415, "Content-Type", "must be application/json", "unsupported_media")
    from webapp.body import read_body  # here, not at the top: keeps this change to this function

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


@bp.put("/<item_id>")
def put_item(item_id: str):
    """Create or replace one item."""
    site = site_for_server()
    try:
        item = validate_item(_json_body(), "body", item_id=item_id)
    except InvalidItem as e:
        raise _invalid(e) from e
    upsert_items(get_engine(), site.site_id, [item])
    _announce(site.site_id)
    return jsonify(success=True, item=get_item(get_engine(), site.site_id, item["item_id"]))


@bp.post("")
def bulk_upsert():
    """Upsert up to 1,000 items: ``{"items": [...]}``; all or nothing."""
    site = site_for_server()
    body = _json_body()
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


@bp.get("/<item_id>")
def read_item(item_id: str):
    """One item, hidden ones included (they say so)."""
    site = site_for_server()
    item = get_item(get_engine(), site.site_id, item_id)
    if item is None:
        raise ApiError(404, "item_id", f"no item {item_id!r} in this site's catalogue", "not_found")
    return jsonify(item)


@bp.delete("/<item_id>")
def delete_item(item_id: str):
    """Hide an item: it stays in order history but is never recommended."""
    site = site_for_server()
    if not hide_item(get_engine(), site.site_id, item_id):
        raise ApiError(404, "item_id", f"no item {item_id!r} in this site's catalogue", "not_found")
    _announce(site.site_id)
    return jsonify(success=True, item_id=item_id, hidden=True)
