"""The owner's Webhooks page: the site's endpoint URL, its signing secret, the delivery log.

Owners only (:func:`site_page`): the secret signs what the shop trusts. Every change (URL set,
secret rotated, endpoint re-enabled) is audited by :mod:`accounts.webhooks`.
"""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_login import current_user

from accounts.webhook_delivery import recent_attempts, recent_deliveries
from accounts.webhooks import (
    EVENT_TYPES,
    InvalidWebhook,
    enable,
    get_endpoint,
    rotate_secret,
    set_endpoint,
)
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page

LOG_ROWS = 50


def _page(site_id: int, status: int = 200, errors: dict | None = None, form: dict | None = None):
    engine = clients().engine
    endpoint = get_endpoint(engine, site_id)
    page = render_template(
        "console/webhooks.html",
        endpoint=endpoint,
        deliveries=recent_deliveries(engine, site_id, LOG_ROWS),
        attempts=recent_attempts(engine, site_id, LOG_ROWS),
        event_types=EVENT_TYPES,
        errors=errors or {},
        form=form or {},
    )
    return page, status


@bp.get("/<int:site_id>/webhooks")
@site_page("owner")
def webhooks(site_id: int):
    """The endpoint, its secret and state, and the latest deliveries and attempts."""
    return _page(site_id)


@bp.post("/<int:site_id>/webhooks/url")
@site_page("owner")
def webhooks_url(site_id: int):
    """Set the endpoint's URL (the first one also makes the signing secret)."""
    url = request.form.get("url", "")[:4000]
    try:
        set_endpoint(clients().engine, site_id, url, actor=current_user.staff)
    except InvalidWebhook as e:
        return _page(site_id, 422, errors={e.field: _sentence(e.reason)}, form={"url": url})
    return redirect(url_for("console.webhooks", site_id=site_id), 303)


@bp.post("/<int:site_id>/webhooks/rotate")
@site_page("owner")
def webhooks_rotate(site_id: int):
    """A new signing secret; the old one stops at once."""
    try:
        rotate_secret(clients().engine, site_id, actor=current_user.staff)
    except InvalidWebhook as e:
        return _page(site_id, 422, errors={"secret": _sentence(e.reason)})
    return redirect(url_for("console.webhooks", site_id=site_id), 303)


@bp.post("/<int:site_id>/webhooks/enable")
@site_page("owner")
def webhooks_enable(site_id: int):
    """Re-enable an endpoint disabled after repeated failures; waiting events go out at once."""
    try:
        enable(clients().engine, site_id, actor=current_user.staff)
    except InvalidWebhook as e:
        return _page(site_id, 422, errors={"enable": _sentence(e.reason)})
    return redirect(url_for("console.webhooks", site_id=site_id), 303)


def _sentence(reason: str) -> str:
    text = reason[:1].upper() + reason[1:]
    return text if text.endswith(".") else text + "."
