"""The merchandising rules API, ``/v1/rules``, and the one way a rules change is stored.

Shop backends read and write a site's rules with its secret server key; the console's rules
page stores its forms through :func:`store_rules` too, so both check, audit and announce alike.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from accounts.audit import record
from recommender import rule_store
from recommender.rules import InvalidRules, Rules
from webapp.auth import site_for_server
from webapp.catalogue import json_body
from webapp.clients import get_engine, get_redis
from webapp.errors import ApiError
from webapp.openapi.parse import parse_json, validate
from webapp.openapi.rules import PlacementPath, RulesDocument
from webapp.recommend import serving

bp = Blueprint("rules_api", __name__, url_prefix="/v1/rules")


def store_rules(
    site_id: int,
    placement: str,
    document: Any,
    *,
    by: str,
    staff_id: int | None = None,
    source: str,
) -> tuple[int, Rules, list[str]]:
    """Check and store a placement's rules, audit it, tell every process; (version, rules,
    warnings). Raises :class:`InvalidRules` naming the field, storing nothing."""
    rules = Rules.from_dict(document)
    with get_engine().begin() as conn:
        warnings = rule_store.check(conn, site_id, rules)
        version = rule_store.save(conn, site_id, placement, rules, by=by)
        _audit(conn, site_id, placement, version, staff_id, by, source)
    _publish(site_id)
    return version, rules, warnings


def remove_rules(
    site_id: int, placement: str, *, by: str, staff_id: int | None = None, source: str
) -> int | None:
    """Delete a placement's own rules (audited, announced); the new version, None if none."""
    with get_engine().begin() as conn:
        version = rule_store.remove(conn, site_id, placement)
        if version is not None:
            _audit(conn, site_id, placement, version, staff_id, by, source, removed=True)
    if version is not None:
        _publish(site_id)
    return version


def _audit(conn, site_id, placement, version, staff_id, by, source, removed=False) -> None:
    detail = {
        "placement": rule_store.placement_name(rule_store.placement_key(placement)),
        "version": version,
        "source": source,
    }
    if removed:
        detail["removed"] = True
    email = None if staff_id is None else by
    record(conn, "rules.update", staff_id=staff_id, email=email, site_id=site_id, detail=detail)


def _publish(site_id: int) -> None:
    """This process serves the change at once; the others when the message reaches them."""
    serving().sites.reload_rules(site_id)
    rule_store.announce(get_redis(), site_id)


def _placement(placement: str) -> str:
    return validate(PlacementPath, {"placement": placement}).placement


@bp.get("")
def read_rules():
    """Every placement's rules of the calling site."""
    site = site_for_server()
    return jsonify(rule_store.as_json(rule_store.load(get_engine(), site.site_id)))


@bp.put("/<placement>")
def put_rules(placement: str):
    """Replace one placement's rules (``default``: the site's default)."""
    site = site_for_server()
    placement = _placement(placement)
    body = json_body()
    parse_json(RulesDocument, body)
    try:
        version, rules, warnings = store_rules(
            site.site_id, placement, body, by="api", source="api"
        )
    except InvalidRules as e:
        raise ApiError(400, f"body.{e.field}" if e.field != "body" else "body", e.reason) from e
    return jsonify(
        success=True,
        placement=placement,
        version=version,
        rules=rules.to_dict(),
        warnings=warnings,
    )


@bp.delete("/<placement>")
def delete_rules(placement: str):
    """Remove one placement's rules: it falls back to the site's default."""
    site = site_for_server()
    placement = _placement(placement)
    version = remove_rules(site.site_id, placement, by="api", source="api")
    if version is None:
        raise ApiError(
            404, "placement", f"placement {placement!r} has no rules of its own", "not_found"
        )
    return jsonify(success=True, placement=placement, version=version)
