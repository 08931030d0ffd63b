"""The data-rights API on one customer, ``/v1/customers/<user_id>``: export and erasure.

Shop backends call it with the site's secret server key; the console's owner action
(webapp.console.erasure) uses the same :func:`stores` and accounts.erasure.
"""

from __future__ import annotations

from pathlib import Path

import redis as redis_lib
from flask import Blueprint, Response, current_app, jsonify
from werkzeug.routing import PathConverter

from accounts import erasure, export
from webapp.auth import site_for_server
from webapp.clients import clients
from webapp.errors import ApiError
from webapp.openapi.customers import CustomerPath
from webapp.openapi.parse import validate
from webapp.recommend import serving

bp = Blueprint("customers_api", __name__, url_prefix="/v1/customers")


class CustomerIdConverter(PathConverter):
    """The rest of the path, except one ending in ``/export`` or ``/similar`` (the export's and
    the similar customers' routes)."""

    regex = r"(?![^\x00]*/(?:export|similar)$)[^/].*?"


bp.record_once(
    lambda state: state.app.url_map.converters.setdefault("customer_id", CustomerIdConverter)
)


def stores() -> erasure.Stores:
    """Where this deployment keeps a person's data (SQL, Redis, spool, models)."""
    c = clients()
    config = current_app.config
    return erasure.Stores(
        engine=c.engine,
        redis=c.redis,
        stream_key=config["STREAM_KEY"],
        spool_dir=Path(config["SPOOL_DIR"]),
        models_dir=Path(config["VAR_DIR"]) / "models",
    )


def erase_everywhere(site_id: int, user_id: str, requested_by: str) -> dict:
    """Erase a customer (accounts.erasure) and blank their rows in the model this process
    serves now (the others do on the message erasure publishes); the receipt."""
    receipt = erasure.erase(stores(), site_id, user_id, requested_by=requested_by)
    serving().refresh(site_id)
    return receipt


def _user_id(user_id: str) -> str:
    return validate(CustomerPath, {"user_id": user_id}).user_id


def _unavailable(e: Exception) -> ApiError:
    return ApiError(
        503,
        "redis",
        f"Redis is unreachable ({e}); nothing is lost: send the same request again (erasure "
        "finishes what it started and answers the same receipt)",
        "unavailable",
        retry_after=current_app.config["RETRY_AFTER_SECONDS"],
    )


def _not_found(user_id: str) -> ApiError:
    return ApiError(404, "user_id", f"no customer {user_id!r} on this site", "not_found")


@bp.get("/<path:user_id>/export")
def export_customer(user_id: str):
    """Everything stored about one customer, as one JSON document."""
    site = site_for_server()
    user_id = _user_id(user_id)
    try:
        document = export.export(stores(), site.site_id, user_id)
    except export.UnknownCustomer:
        raise _not_found(user_id) from None
    except redis_lib.RedisError as e:
        raise _unavailable(e) from e
    response = Response(export.encode(document), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/<customer_id:user_id>")
def erase_customer(user_id: str):
    """Erase one customer from every store; answer the receipt."""
    site = site_for_server()
    user_id = _user_id(user_id)
    try:
        receipt = erase_everywhere(site.site_id, user_id, "api")
    except erasure.UnknownCustomer:
        raise _not_found(user_id) from None
    except redis_lib.RedisError as e:
        raise _unavailable(e) from e
    return jsonify(success=True, receipt=receipt)
