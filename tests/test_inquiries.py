"""Inquiries: the domain rules (accounts.inquiries) and the console's queue, thread and report.

On SQLite and PostgreSQL. A customer reaches only their own inquiries and orders; staff act by
role with CSRF and an audit entry; bad input is named beside its field; the report's numbers are
checked against inquiries whose times are set by hand.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from accounts import audit
from accounts import inquiries as domain
from accounts.inquiries import InquiryError
from accounts.messaging_schema import email_outbox
from accounts.prefs_schema import inquiries as inquiries_table
from tests.staff_helpers import csrf_token, sign_in
from tracking.schema import customers, orders
from tracking.sites import create_site

HOSTILE = "<script>alert('x')</script><b>bold</b>"


def _customer(db, site_id: int, user_id: str, email: str | None = None) -> None:
    now = datetime.now(UTC)
    with db.begin() as conn:
        conn.execute(
            customers.insert().values(
                site_id=site_id,
                user_id=user_id,
                traits={"email": email} if email else {},
                first_seen_at=now,
                last_seen_at=now,
            )
        )


def _order(db, site_id: int, order_id: str, user_id: str) -> None:
    with db.begin() as conn:
        conn.execute(
            orders.insert().values(
                site_id=site_id,
                order_id=order_id,
                user_id=user_id,
                message_id=f"m-{order_id}",
                ordered_at=datetime.now(UTC),
            )
        )


def _open(db, site_id: int, user_id: str = "c-1", **fields) -> int:
    values = {"category": "question", "subject": "Where is it?", "body": "Hello"} | fields
    with db.begin() as conn:
        return domain.open_inquiry(conn, site_id, user_id, **values)


def test_a_customer_opens_an_inquiry_about_their_own_order_only(db, site):
    _order(db, site.site_id, "o-1", "c-1")
    _order(db, site.site_id, "o-2", "c-2")
    inquiry_id = _open(db, site.site_id, order_id="o-1", category="return")
    for order_id in ("o-2", "o-none"):  # someone else's and nobody's: the same answer
        with pytest.raises(InquiryError) as e:
            _open(db, site.site_id, order_id=order_id)
        assert (e.value.field, e.value.reason) == ("order_id", "not one of your orders")
    with db.connect() as conn:
        found = domain.get_inquiry(conn, site.site_id, inquiry_id, "c-1")
        assert found.order_id == "o-1" and found.status == "open" and found.category == "return"
        assert domain.get_inquiry(conn, site.site_id, inquiry_id, "c-2") is None
        assert [m.author for m in domain.thread(conn, found)] == ["customer"]


def test_another_sites_inquiry_is_not_found(db, site):
    other, _ = create_site(db, "Other shop", [])
    inquiry_id = _open(db, site.site_id)
    with db.begin() as conn:
        assert domain.get_inquiry(conn, other.site_id, inquiry_id) is None
        with pytest.raises(InquiryError) as e:
            domain.reply(conn, other.site_id, inquiry_id, 1, "hi")
        assert e.value.field == "inquiry"
        with pytest.raises(InquiryError):
            domain.add_customer_message(conn, site.site_id, "c-2", inquiry_id, "mine?")


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"category": "praise"}, "category", "one of question"),
        ({"subject": ""}, "subject", "required"),
        ({"subject": "s" * 201}, "subject", "at most 200"),
        ({"body": "   "}, "body", "required"),
        ({"body": "x" * 100_000}, "body", "at most 10,000 characters (this one has 100,000)"),
        ({"body": "a\x00b"}, "body", "NUL"),
        ({"order_id": 5}, "order_id", "not one of your orders"),
    ],
)
def test_bad_inquiries_are_refused_naming_the_field(db, site, fields, field, words):
    with pytest.raises(InquiryError) as e:
        _open(db, site.site_id, **fields)
    assert e.value.field == field and words in e.value.reason
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inquiries_table)).scalar() == 0


def test_the_thread_and_status_follow_replies_and_messages(db, site):
    inquiry_id = _open(db, site.site_id)
    with db.begin() as conn:
        domain.reply(conn, site.site_id, inquiry_id, 7, "It ships tomorrow.")
        first = domain.get_inquiry(conn, site.site_id, inquiry_id)
        assert first.status == "answered" and first.first_reply_at is not None
        domain.add_customer_message(conn, site.site_id, "c-1", inquiry_id, "Thanks, and?")
        assert domain.get_inquiry(conn, site.site_id, inquiry_id).status == "open"
        domain.reply(conn, site.site_id, inquiry_id, 8, "Tracking number follows.")
        # The first reply's time stays the first one.
        again = domain.get_inquiry(conn, site.site_id, inquiry_id)
        assert again.first_reply_at == first.first_reply_at
        domain.set_status(conn, site.site_id, inquiry_id, "closed")
        closed = domain.get_inquiry(conn, site.site_id, inquiry_id)
        assert closed.status == "closed" and closed.closed_at is not None
        with pytest.raises(InquiryError) as e:
            domain.add_customer_message(conn, site.site_id, "c-1", inquiry_id, "Hello?")
        assert e.value.field == "body" and "closed" in e.value.reason
        thread = domain.thread(conn, closed)
    assert [(m.author, m.staff_id) for m in thread] == [
        ("customer", None),
        ("staff", 7),
        ("customer", None),
        ("staff", 8),
    ]


def test_the_reply_email_has_the_outbox_fields(db, site):
    _customer(db, site.site_id, "c-1", "ann@example.com")
    with_email = _open(db, site.site_id, "c-1", subject="Broken mug")
    without = _open(db, site.site_id, "c-2")
    with db.connect() as conn:
        found = domain.get_inquiry(conn, site.site_id, with_email)
        mail = domain.reply_email(
            conn, found, "Sorry!", site_name="Test shop", inquiry_url="https://x/1", locale="ko"
        )
        assert mail == {
            "to": "ann@example.com",
            "template": "inquiry_reply",
            "locale": "ko",
            "context": {
                "site_name": "Test shop",
                "subject": "Broken mug",
                "reply_text": "Sorry!",
                "inquiry_url": "https://x/1",
            },
            "user_id": "c-1",
        }
        nobody = domain.get_inquiry(conn, site.site_id, without)
        assert domain.reply_email(conn, nobody, "x", site_name="s", inquiry_url="u") is None


def _set_times(db, inquiry_id: int, created: datetime, replied: datetime | None) -> None:
    with db.begin() as conn:
        conn.execute(
            inquiries_table.update()
            .where(inquiries_table.c.id == inquiry_id)
            .values(created_at=created, first_reply_at=replied)
        )


def test_queue_filters_and_summary(db, site):
    now = datetime.now(UTC)
    old = _open(db, site.site_id, category="complaint")
    _set_times(db, old, now - timedelta(days=10), None)
    new = _open(db, site.site_id, "c-2", category="question")
    with db.begin() as conn:
        domain.set_status(conn, site.site_id, new, "waiting")
        ids = lambda **kw: [i.id for i in domain.queue(conn, site.site_id, **kw)]  # noqa: E731
        assert ids() == [new, old]
        assert ids(status="waiting") == [new]
        assert ids(category="complaint") == [old]
        assert ids(older_than_days=7) == [old]
        assert ids(before_id=new) == [old]
        with pytest.raises(InquiryError) as e:
            domain.queue(conn, site.site_id, status="lost")
        assert e.value.field == "status"
        summary = domain.customer_summary(conn, site.site_id, "c-1")
    assert summary["total"] == 1 and summary["counts"]["open"] == 1
    assert [i.id for i in summary["latest"]] == [old]


def test_report_counts_by_category_and_the_median_time_to_first_reply(db, site):
    day = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    for category, hours in [("question", 1), ("question", 3), ("question", 8), ("complaint", 2)]:
        inquiry_id = _open(db, site.site_id, category=category)
        _set_times(db, inquiry_id, day, day + timedelta(hours=hours))
    late = _open(db, site.site_id, category="return")
    _set_times(db, late, day + timedelta(days=1), None)
    outside = _open(db, site.site_id, category="return")
    _set_times(db, outside, day - timedelta(days=5), None)
    with db.connect() as conn:
        report = domain.inquiry_report(conn, site.site_id, day.date(), day.date() + timedelta(1))
    rows = {r["category"]: r for r in report["by_category"]}
    assert rows["question"] == {
        "category": "question",
        "opened": 3,
        "replied": 3,
        "median_hours_to_first_reply": 3.0,
    }
    assert rows["complaint"]["median_hours_to_first_reply"] == 2.0
    assert rows["return"] == {
        "category": "return",
        "opened": 1,
        "replied": 0,
        "median_hours_to_first_reply": None,
    }
    assert rows["all"]["opened"] == 5 and rows["all"]["median_hours_to_first_reply"] == 2.5
    assert [(d["day"].isoformat(), d["question"], d["return"]) for d in report["days"]] == [
        ("2026-11-02", 3, 0),
        ("2026-11-03", 0, 1),
    ]


# The console


@pytest.fixture
def opened(db, site):
    """An inquiry with markup in its text, from a known customer."""
    _customer(db, site.site_id, "c-1", "ann@example.com")
    return _open(db, site.site_id, "c-1", subject=f"Subject {HOSTILE}", body=f"Body {HOSTILE}")


def _page(site, inquiry_id=None) -> str:
    base = f"/console/{site.site_id}/inquiries"
    return base if inquiry_id is None else f"{base}/{inquiry_id}"


def test_a_viewer_reads_the_queue_and_thread_but_cannot_act(app, client, site, opened):
    sign_in(client, app, "viewer@staff.example", {site.site_id: "viewer"})
    queue = client.get(_page(site))
    assert queue.status_code == 200
    text = queue.get_data(as_text=True)
    assert "Subject &lt;script&gt;" in text and HOSTILE not in text
    thread = client.get(_page(site, opened)).get_data(as_text=True)
    assert "Body &lt;script&gt;alert(" in thread and HOSTILE not in thread
    assert "Send reply" not in thread
    token = csrf_token(client, "/console/account")
    r = client.post(f"{_page(site, opened)}/reply", data={"body": "hi", "csrf_token": token})
    assert r.status_code == 403


def test_a_marketer_replies_assigns_and_closes_with_audit_entries(app, client, db, site, opened):
    user = sign_in(client, app, "marketer@staff.example", {site.site_id: "marketer"})
    page = _page(site, opened)
    r = client.post(
        f"{page}/reply", data={"body": "We are on it.", "csrf_token": csrf_token(client, page)}
    )
    assert r.status_code == 303
    assert "We are on it." in client.get(page).get_data(as_text=True)
    # The reply is emailed to the customer through the outbox, in the same transaction.
    with db.connect() as conn:
        (mail,) = conn.execute(sa.select(email_outbox)).all()
    assert mail.to_address == "ann@example.com" and mail.user_id == "c-1"
    assert (
        "We are on it." in mail.body_text
        and f"/account/sign-in?site={site.site_id}" in mail.body_text
    )
    r = client.post(
        f"{page}/assign",
        data={"staff_id": str(user.staff_id), "csrf_token": csrf_token(client, page)},
    )
    assert r.status_code == 303
    r = client.post(
        f"{page}/status", data={"status": "closed", "csrf_token": csrf_token(client, page)}
    )
    assert r.status_code == 303
    with db.connect() as conn:
        found = domain.get_inquiry(conn, site.site_id, opened)
    assert found.status == "closed" and found.assignee_staff_id == user.staff_id
    assert found.first_reply_at is not None
    actions = [e.action for e in audit.entries(db, [site.site_id]) if e.site_id == site.site_id]
    assert actions[:3] == ["inquiry_status", "inquiry_assigned", "inquiry_replied"]
    # Audit entries carry ids, never the customer's text.
    assert all("We are on it" not in str(e.detail) for e in audit.entries(db, [site.site_id]))


def test_bad_console_input_is_named_beside_its_field(app, client, db, site, opened):
    other, _ = create_site(db, "Other shop", [])
    sign_in(client, app, "owner@staff.example", {site.site_id: "owner"})
    stranger = sign_in(app.test_client(), app, "stranger@staff.example", {other.site_id: "owner"})
    page = _page(site, opened)
    r = client.post(
        f"{page}/reply", data={"body": "y" * 100_000, "csrf_token": csrf_token(client, page)}
    )
    assert r.status_code == 422
    assert 'id="body-error">at most 10,000 characters (this one has 100,000)' in r.get_data(
        as_text=True
    )
    r = client.post(
        f"{page}/assign",
        data={"staff_id": str(stranger.staff_id), "csrf_token": csrf_token(client, page)},
    )
    assert r.status_code == 422 and 'id="staff_id-error"' in r.get_data(as_text=True)
    r = client.post(
        f"{page}/status", data={"status": "gone", "csrf_token": csrf_token(client, page)}
    )
    assert r.status_code == 422 and 'id="status-error"' in r.get_data(as_text=True)
    # Without the CSRF token nothing happens.
    assert client.post(f"{page}/reply", data={"body": "hi"}).status_code == 400
    # An inquiry number of no inquiry (or another site's) is a 404.
    token = csrf_token(client, page)
    r = client.post(f"{_page(site, opened + 999)}/reply", data={"body": "x", "csrf_token": token})
    assert r.status_code == 404
    queue = client.get(_page(site), query_string={"status": "lost", "age": "x"})
    text = queue.get_data(as_text=True)
    assert queue.status_code == 200 and 'id="status-error"' in text and 'id="age-error"' in text
    with db.connect() as conn:
        assert domain.thread(conn, domain.get_inquiry(conn, site.site_id, opened))[-1].author == (
            "customer"
        )


def test_the_report_page_and_its_csv(app, client, db, site):
    today = datetime.now(UTC).replace(hour=0, minute=30)
    for category, hours in [("complaint", 4), ("complaint", 6), ("suggestion", None)]:
        inquiry_id = _open(db, site.site_id, category=category)
        replied = today + timedelta(hours=hours) if hours else None
        _set_times(db, inquiry_id, today, replied)
    sign_in(client, app, "viewer@staff.example", {site.site_id: "viewer"})
    page = client.get(f"/console/{site.site_id}/inquiries/report", query_string={"range": "7"})
    assert page.status_code == 200 and "Median hours to first reply" in page.get_data(as_text=True)
    got = client.get(
        f"/console/{site.site_id}/inquiries/report",
        query_string={"range": "7", "csv": "by_category"},
    )
    assert got.mimetype == "text/csv"
    rows = {r["Category"]: r for r in csv.DictReader(io.StringIO(got.get_data(as_text=True)))}
    assert rows["complaint"]["Opened"] == "2" and rows["complaint"]["Replied to"] == "2"
    assert rows["complaint"]["Median hours to first reply"] == "5.0"
    assert rows["suggestion"]["Opened"] == "1" and rows["suggestion"]["Replied to"] == "0"
    days = client.get(
        f"/console/{site.site_id}/inquiries/report", query_string={"range": "7", "csv": "days"}
    ).get_data(as_text=True)
    assert f"{today.date().isoformat()},0,2,0,1" in days


def test_the_customer_page_shows_their_inquiries(app, client, db, site, opened):
    _open(db, site.site_id, "c-1", subject="Second one", category="suggestion")
    _open(db, site.site_id, "c-2", subject="Not theirs")
    sign_in(client, app, "viewer@staff.example", {site.site_id: "viewer"})
    text = client.get(f"/console/{site.site_id}/customers/c-1").get_data(as_text=True)
    assert 'id="inquiries"' in text and "2 in all: 2 open" in text
    assert "Second one" in text and "Not theirs" not in text
    assert f"/console/{site.site_id}/inquiries/{opened}" in text
