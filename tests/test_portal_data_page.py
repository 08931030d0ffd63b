"""Download my data from the portal: the same document the shop's export API gives, as an
attachment no cache keeps; and a customer the shop never sent (only portal rows) is still found
by export and erasure."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from accounts import consent
from accounts.prefs_schema import consent_records
from tests.portal_helpers import add_customer, enter


def _without_time(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "generated_at"}


def test_the_download_is_the_shops_export_of_the_signed_in_customer(client, site, db):
    add_customer(db, site.site_id, "c1", email="ana@example.com", name="Ana Data-Marker")
    add_customer(db, site.site_id, "c2", email="bo@example.com", name="Bo Other")
    enter(client, site, "c1")
    page = client.get("/account/data").get_data(as_text=True)
    assert "/account/data/export.json" in page
    response = client.get("/account/data/export.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="my-data-')
    assert response.headers["Cache-Control"] == "no-store"
    mine = orjson.loads(response.get_data())
    assert mine["user_id"] == "c1"
    assert "Data-Marker" in response.get_data(as_text=True)
    assert "Bo Other" not in response.get_data(as_text=True)
    api = client.get("/v1/customers/c1/export", auth=(site.server_key, ""))
    assert api.status_code == 200
    assert _without_time(mine) == _without_time(orjson.loads(api.get_data()))


def test_signed_out_gets_the_sign_in_page_not_data(client, site):
    response = client.get("/account/data/export.json")
    assert response.status_code == 302
    assert "/account/sign-in" in response.headers["Location"]


def test_a_customer_known_only_by_portal_rows_is_exported_and_erased(client, site, db):
    with db.begin() as conn:
        consent.record(
            conn,
            site.site_id,
            "portal-only",
            "email:offers",
            True,
            source="portal",
            wording="Only-Portal-Marker wording",
        )
    key = (site.server_key, "")
    exported = client.get("/v1/customers/portal-only/export", auth=key)
    assert exported.status_code == 200, exported.get_json()
    assert "Only-Portal-Marker" in exported.get_data(as_text=True)
    erased = client.delete("/v1/customers/portal-only", auth=key)
    assert erased.status_code == 200, erased.get_json()
    with db.connect() as conn:
        left = conn.execute(
            sa.select(sa.func.count()).where(consent_records.c.user_id == "portal-only")
        ).scalar()
    assert left == 0
    # Nobody at all is still unknown.
    assert client.get("/v1/customers/nobody/export", auth=key).status_code == 404
