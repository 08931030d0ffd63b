"""Download my data (GDPR Art. 20): the signed-in customer's export, from the portal.

``/account/data`` says what the download holds; ``/account/data/export.json`` is the document
accounts.export makes for the shop's ``GET /v1/customers/{id}/export`` (the same function and
stores, so both give the same rows), as an attachment that no cache keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, g, render_template

from accounts import export
from webapp.customers_api import stores
from webapp.portal import bp, customer_required


@bp.get("/data")
@customer_required
def data_page():
    """What "Download my data" gives, and the link."""
    return render_template("portal/data.html")


@bp.get("/data/export.json")
@customer_required
def data_export():
    """The customer's whole export document, one JSON file."""
    try:
        document = export.export(stores(), g.customer.site_id, g.customer.user_id)
    except export.UnknownCustomer:
        # Nothing stored about them yet: the document says so rather than failing.
        document = {
            "format": export.FORMAT,
            "site_id": g.customer.site_id,
            "user_id": g.customer.user_id,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "tables": {},
            "note": "nothing is stored about this customer",
        }
    response = current_app.response_class(export.encode(document), mimetype="application/json")
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    response.headers["Content-Disposition"] = f'attachment; filename="my-data-{day}.json"'
    response.headers["Cache-Control"] = "no-store"
    return response
