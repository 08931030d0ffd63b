"""The rules page: each placement's merchandising rules, an editor with a preview, save, remove.

Viewers read the rules; marketers and owners edit one placement at a time (``?placement=``;
``default`` is the site's default) and preview a customer's answer under the form's values,
not yet saved, beside their answer under the saved rules. Saving goes through
:func:`webapp.rules_api.store_rules`, so the page and the API check, audit and announce alike.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from flask import render_template, request
from flask_login import current_user

from recommender import rule_store
from recommender.answer_cache import recent_events
from recommender.rules import InvalidRules, Rules, VipRules
from recommender.serving import VIP_ONLY, customer_traits
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.rules_form import (
    FormErrors,
    document_from_form,
    form_field,
    form_values,
    values_from_form,
    without_rows,
)
from webapp.recommend import PLACEMENT, serving
from webapp.rules_api import remove_rules, store_rules

PREVIEW_ITEMS = 10


def _placement(raw: str | None, errors: dict[str, str]) -> str:
    name = (raw or "").strip() or rule_store.DEFAULT_NAME
    if not PLACEMENT.fullmatch(name):
        errors["placement"] = "1-64 letters, digits, '-' or '_'"
        return rule_store.DEFAULT_NAME
    return rule_store.placement_name(rule_store.placement_key(name))


def _page(site_id: int, placement: str, status: int = 200, **extra: Any):
    book = rule_store.load(clients().engine, site_id)
    own = book.placements.get(rule_store.placement_key(placement))
    values = extra.pop("values", None) or form_values(book.rules_for(placement))
    placements = [
        {
            "name": rule_store.placement_name(key),
            "stored": stored,
            "summary": _summary(stored.rules),
        }
        for key, stored in sorted(book.placements.items())
    ]
    if rule_store.DEFAULT not in book.placements:
        placements.insert(
            0, {"name": rule_store.DEFAULT_NAME, "stored": None, "summary": "built-in defaults"}
        )
    page = render_template(
        "console/rules.html",
        book=book,
        placement=placement,
        own=own,
        placements=placements,
        values=values,
        campaign_rows=len(values["campaigns"]) + 1,
        errors=extra.pop("errors", {}),
        **extra,
    )
    return page, status


def _summary(rules: Rules) -> str:
    parts = []
    if rules.include_categories:
        parts.append("only " + ", ".join(rules.include_categories))
    if rules.exclude_categories:
        parts.append("not " + ", ".join(rules.exclude_categories))
    if rules.min_price is not None or rules.max_price is not None:
        low = "" if rules.min_price is None else f"{rules.min_price:g}"
        high = "" if rules.max_price is None else f"{rules.max_price:g}"
        parts.append(f"price {low}–{high}")
    if rules.max_per_category:
        parts.append(f"at most {rules.max_per_category} per category")
    if rules.pinned:
        parts.append(f"{len(rules.pinned)} pinned")
    if rules.boosts:
        parts.append(f"{len(rules.boosts)} boosted")
    if rules.campaigns:
        parts.append(f"{len(rules.campaigns)} campaign(s)")
    if rules.vip:
        parts.append(f"VIPs: {len(rules.vip.pinned)} pinned, {len(rules.vip.boosts)} boosted")
        if rules.vip.only:
            parts.append("VIPs only")
    if not rules.exclude_purchased:
        parts.append("purchased items shown")
    return "; ".join(parts) or "defaults"


@bp.get("/<int:site_id>/rules")
@site_page("viewer")
def rules(site_id: int):
    """Every placement's rules; the chosen placement's in the editor (read-only for viewers)."""
    errors: dict[str, str] = {}
    placement = _placement(request.args.get("placement"), errors)
    return _page(site_id, placement, errors=errors)


@bp.post("/<int:site_id>/rules")
@site_page("marketer")
def rules_post(site_id: int):
    """Save, preview or remove the placement's rules (the button pressed says which)."""
    errors: dict[str, str] = {}
    placement = _placement(request.form.get("placement"), errors)
    action = request.form.get("action", "save")
    if errors:
        return _page(site_id, placement, 400, errors=errors)
    if action == "remove":
        version = remove_rules(
            site_id,
            placement,
            by=current_user.email,
            staff_id=current_user.staff_id,
            source="console",
        )
        message = (
            f"{placement}: its own rules removed (version {version})"
            if version is not None
            else f"{placement} had no rules of its own"
        )
        return _page(site_id, placement, message=message)
    values = values_from_form(request.form)
    try:
        document = document_from_form(request.form)
        rules = Rules.from_dict(without_rows(document))
    except FormErrors as e:
        return _page(site_id, placement, 400, values=values, errors=e.errors)
    except InvalidRules as e:
        errors[form_field(e.field, document)] = e.reason
        return _page(site_id, placement, 400, values=values, errors=errors)
    if action == "preview":
        customer = request.form.get("customer", "").strip()
        if not customer or len(customer) > 255 or "\x00" in customer:
            errors["customer"] = "type a customer id (at most 255 characters)"
            return _page(site_id, placement, 400, values=values, errors=errors)
        saved = rule_store.load(clients().engine, site_id).rules_for(placement)
        preview = {
            "customer": customer,
            "edited": _answer(site_id, customer, rules),
            "saved": _answer(site_id, customer, saved),
        }
        return _page(site_id, placement, values=values, preview=preview)
    try:
        version, _, warnings = store_rules(
            site_id,
            placement,
            without_rows(document),
            by=current_user.email,
            staff_id=current_user.staff_id,
            source="console",
        )
    except InvalidRules as e:
        errors[form_field(e.field, document)] = e.reason
        return _page(site_id, placement, 400, values=values, errors=errors)
    return _page(
        site_id, placement, message=f"{placement}: saved as version {version}", warnings=warnings
    )


def _answer(site_id: int, customer: str, rules: Rules) -> dict[str, Any]:
    """A customer's recommendations under these rules now, computed afresh (no cache)."""
    layer = serving()
    state = layer.state(site_id)
    recent: list[dict] = []
    if layer.redis is not None:
        try:
            recent = recent_events(layer.redis, state, f"u:{customer}", None)
        except Exception:  # the preview goes on without the newest events
            recent = []
    served = _for(rules.at(datetime.now(UTC)), layer.customer_segment(site_id, customer))
    if served.vip.only:  # the VIPs' own placement: this customer is answered no items
        return {"source": VIP_ONLY, "model_version": state.version, "items": []}
    found = state.service.recommend_for_customer(
        customer,
        PREVIEW_ITEMS,
        rules=served,
        traits=customer_traits(clients().engine, site_id, customer),
        recent_events=recent,
        purchased=[e["item_id"] for e in recent if e.get("event") == "Order Completed"],
    )
    details = state.view.details
    items = [
        {
            "position": i + 1,
            "item_id": item_id,
            "title": (details.get(item_id) or {}).get("title") or "",
            "reason": reason,
        }
        for i, (item_id, reason) in enumerate(zip(found.item_ids, found.reasons, strict=True))
    ]
    return {"source": found.source, "model_version": found.model_version, "items": items}


def _for(rules: Rules, customer: dict[str, Any] | None) -> Rules:
    """The rules as this customer is served them: a VIP gets the VIP variant."""
    if customer and customer["vip"]:
        return rules.for_vip()
    return replace(rules, vip=VipRules(only=rules.vip.only))
