"""/account/inquiries: the customer's list (newest first, with status), opening one (optionally
about one of their own orders), the thread with the console's replies, and every field's bad
input shown beside the field (a 100 KB text included), never a 500.
"""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from accounts import inquiries
from accounts.prefs_schema import inquiries as inquiry_table
from accounts.prefs_schema import inquiry_messages
from tests.portal_helpers import add_customer, csrf_token, enter
from tests.staff_helpers import sign_in as staff_sign_in
from tests.test_portal_pages import add_orders

NEW = "/account/inquiries/new"
HOSTILE = '<script>alert("x")</script><b>bold</b>'


def open_form(client, **fields):
    form = {"category": "question", "order_id": "", "subject": "Where is it?", "body": "Hello"}
    return client.post(NEW, data={**form, **fields, "csrf_token": csrf_token(client, NEW)})


def stored(db) -> list[dict]:
    with db.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(inquiry_table)).mappings()]


def opened_id(response) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    return int(re.search(r"/account/inquiries/(\d+)$", response.headers["Location"]).group(1))


def test_a_customer_opens_an_inquiry_about_their_order_and_follows_it(client, site, db):
    add_orders(db, site.site_id, "c1", 2)
    add_orders(db, site.site_id, "c2", 1)
    enter(client, site, "c1")
    form = client.get(NEW).get_data(as_text=True)
    assert 'value="c1-o01"' in form and 'value="c1-o00"' in form
    assert "c2-o00" not in form  # only their own orders are offered
    inquiry_id = opened_id(
        open_form(client, category="return", order_id="c1-o01", subject="Broken", body=HOSTILE)
    )
    (row,) = stored(db)
    assert (row["user_id"], row["category"], row["order_id"], row["status"]) == (
        "c1",
        "return",
        "c1-o01",
        "open",
    )
    page = client.get(f"/account/inquiries/{inquiry_id}").get_data(as_text=True)
    assert "Broken" in page and "Order c1-o01" in page and "Waiting for the shop" in page
    assert "&lt;script&gt;alert(" in page and HOSTILE not in page  # text, not markup

    # The customer writes again while it is open.
    path = f"/account/inquiries/{inquiry_id}"
    response = client.post(path, data={"body": "Any news?", "csrf_token": csrf_token(client, path)})
    assert response.status_code == 303
    assert "Any news?" in client.get(path).get_data(as_text=True)


def test_the_list_is_newest_first_with_status_and_only_theirs(client, site, db):
    with db.begin() as conn:
        first = inquiries.open_inquiry(
            conn, site.site_id, "c1", category="question", subject="First-One", body="a"
        )
        inquiries.open_inquiry(
            conn, site.site_id, "c2", category="question", subject="Not-Mine", body="b"
        )
        inquiries.open_inquiry(
            conn, site.site_id, "c1", category="suggestion", subject="Second-One", body="c"
        )
        inquiries.set_status(conn, site.site_id, first, "closed")
    enter(client, site, "c1")
    page = client.get("/account/inquiries").get_data(as_text=True)
    assert page.index("Second-One") < page.index("First-One")
    assert "Not-Mine" not in page
    assert "Closed" in page and "Suggestion" in page


def test_a_console_reply_shows_in_the_thread_and_a_closed_one_takes_no_more(app, client, site, db):
    add_customer(db, site.site_id, "c1", email="ann@example.com")
    enter(client, site, "c1")
    inquiry_id = opened_id(open_form(client, subject="Size?", body="Which size fits?"))
    staff = app.test_client()
    staff_sign_in(staff, app, "marketer@staff.example", {site.site_id: "marketer"})
    console = f"/console/{site.site_id}/inquiries/{inquiry_id}"
    reply = staff.post(
        f"{console}/reply",
        data={"body": "Take one size up.", "csrf_token": csrf_token(staff, console)},
    )
    assert reply.status_code == 303
    path = f"/account/inquiries/{inquiry_id}"
    page = client.get(path).get_data(as_text=True)
    assert "Take one size up." in page and "The shop" in page and "Answered" in page
    token = csrf_token(client, path)

    closed = staff.post(
        f"{console}/status", data={"status": "closed", "csrf_token": csrf_token(staff, console)}
    )
    assert closed.status_code == 303
    page = client.get(path).get_data(as_text=True)
    assert "This inquiry is closed" in page and 'name="body"' not in page
    late = client.post(path, data={"body": "One more thing", "csrf_token": token})
    assert late.status_code == 400
    assert 'id="body-error"' in late.get_data(as_text=True)
    with db.connect() as conn:
        bodies = conn.execute(sa.select(inquiry_messages.c.body)).scalars().all()
    assert "One more thing" not in bodies


def test_korean_pages(client, site, db):
    enter(client, site, "c1", locale="ko")
    assert "쇼핑몰에 문의하기" in client.get("/account/inquiries").get_data(as_text=True)
    response = open_form(client, subject="", body="x" * 10_001)
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "최대 10,000자까지 쓸 수 있습니다 (지금 10,001자)" in text


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"category": "lottery"}, "category", "Choose a category."),
        ({"category": ""}, "category", "Choose a category."),
        ({"subject": ""}, "subject", "is required"),
        ({"subject": "   "}, "subject", "is required"),
        ({"subject": "s" * 201}, "subject", "must be at most 200 characters (this one has 201)"),
        ({"subject": "a\x00b"}, "subject", "must not contain control characters"),
        ({"body": ""}, "body", "is required"),
        (
            {"body": "y" * 100_000},
            "body",
            "must be at most 10,000 characters (this one has 100,000)",
        ),
        ({"body": "a\x00b"}, "body", "must not contain control characters"),
        ({"order_id": "c2-o00"}, "order_id", "is not one of your orders"),  # another customer's
        ({"order_id": "nope"}, "order_id", "is not one of your orders"),
        ({"order_id": "o" * 300}, "order_id", "is not one of your orders"),
    ],
)
def test_bad_input_comes_back_beside_its_field(client, site, db, fields, field, message):
    add_orders(db, site.site_id, "c2", 1)
    enter(client, site, "c1")
    response = open_form(client, **fields)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert re.search(rf'id="{field}-error">[^<]*{re.escape(message)}', text), text[-2000:]
    assert 'aria-invalid="true"' in text
    assert stored(db) == []


def test_every_problem_at_once_and_the_text_kept(client, site, db):
    enter(client, site, "c1")
    response = open_form(client, category="x", subject="", body="Keep-This-Text", order_id="no")
    text = response.get_data(as_text=True)
    assert response.status_code == 400
    for field in ("category", "subject", "order_id"):
        assert f'id="{field}-error"' in text
    assert "Keep-This-Text" in text


def test_a_message_of_100_kb_on_the_thread_is_a_form_error(client, site, db):
    enter(client, site, "c1")
    inquiry_id = opened_id(open_form(client))
    path = f"/account/inquiries/{inquiry_id}"
    token = csrf_token(client, path)
    for body, message in (
        ("z" * 100_000, "must be at most 10,000 characters (this one has 100,000)"),
        ("", "is required"),
    ):
        response = client.post(path, data={"body": body, "csrf_token": token})
        assert response.status_code == 400
        assert message in response.get_data(as_text=True)
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(inquiry_messages)).scalar() == 1


def test_someone_elses_inquiry_is_a_404_like_an_unknown_one(app, client, site, db):
    with db.begin() as conn:
        theirs = inquiries.open_inquiry(
            conn, site.site_id, "c2", category="question", subject="Private-Subject", body="b"
        )
    enter(client, site, "c1")
    token = csrf_token(client, NEW)
    for inquiry_id in (theirs, theirs + 1000, 2**63, 10**30):
        path = f"/account/inquiries/{inquiry_id}"
        seen = client.get(path)
        assert seen.status_code == 404 and "Private-Subject" not in seen.get_data(as_text=True)
        written = client.post(path, data={"body": "Mine now", "csrf_token": token})
        assert written.status_code == 404
    with db.connect() as conn:
        bodies = conn.execute(sa.select(inquiry_messages.c.body)).scalars().all()
    assert bodies == ["b"]


def test_forms_need_their_csrf_token(client, site, db):
    enter(client, site, "c1")
    response = client.post(
        NEW, data={"category": "question", "subject": "s", "body": "b", "order_id": ""}
    )
    assert response.status_code == 400 and stored(db) == []
