"""Inquiries (the voice of the customer): questions, complaints, returns, suggestions; threads.

A customer opens an inquiry (optionally about one of their own orders) and may add messages;
staff assign it, reply and close it from the console. Status: ``open`` (the customer wrote
last), ``waiting`` (staff set it aside, waiting on something), ``answered`` (staff replied),
``closed``. The first staff reply's time is kept for the report (:func:`inquiry_report`: volume
by category per period and the median time to first reply).

Every function takes the site id and, for customers, the user id, and finds nothing outside
them: a customer sees only their own inquiries, staff only their site's. Text is stored as
given and shown as text (the console's templates escape it).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from accounts.prefs_schema import inquiries, inquiry_messages
from tracking.db import aware
from tracking.errors import FieldError
from tracking.schema import customers, orders

CATEGORIES = ("question", "complaint", "return", "suggestion")
STATUSES = ("open", "waiting", "answered", "closed")
MAX_SUBJECT = 200  # characters
MAX_BODY = 10_000  # characters of one message
MAX_ID = 255
PAGE = 50


class InquiryError(FieldError):
    """An inquiry or message that cannot be stored: ``field`` says which input, ``reason`` why."""


@dataclass(frozen=True)
class Inquiry:
    """One inquiry without its thread."""

    id: int
    site_id: int
    user_id: str
    category: str
    order_id: str | None
    subject: str
    status: str
    assignee_staff_id: int | None
    created_at: datetime
    updated_at: datetime
    first_reply_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True)
class Message:
    """One message of an inquiry's thread."""

    id: int
    author: str  # customer | staff
    staff_id: int | None
    body: str
    created_at: datetime


def _inquiry(row) -> Inquiry:
    return Inquiry(
        id=row.id,
        site_id=row.site_id,
        user_id=row.user_id,
        category=row.category,
        order_id=row.order_id,
        subject=row.subject,
        status=row.status,
        assignee_staff_id=row.assignee_staff_id,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        first_reply_at=aware(row.first_reply_at) if row.first_reply_at else None,
        closed_at=aware(row.closed_at) if row.closed_at else None,
    )


def _text(field: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InquiryError(field, "required")
    if len(value) > limit:
        raise InquiryError(field, f"at most {limit:,} characters (this one has {len(value):,})")
    if "\x00" in value:
        raise InquiryError(field, "must not contain NUL characters")
    return value.strip()


def check_body(body: Any) -> str:
    """A message's text, stripped, or :class:`InquiryError` naming ``body``."""
    return _text("body", body, MAX_BODY)


def open_inquiry(
    conn: sa.Connection,
    site_id: int,
    user_id: str,
    *,
    category: str,
    subject: str,
    body: str,
    order_id: str | None = None,
) -> int:
    """Open an inquiry with its first message, in the caller's transaction; returns its id."""
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_ID:
        raise InquiryError("user_id", f"a customer id of 1 to {MAX_ID} characters")
    _check_category(category)
    subject = _text("subject", subject, MAX_SUBJECT)
    body = check_body(body)
    order_id = _check_order(conn, site_id, user_id, order_id)
    now = datetime.now(UTC)
    inquiry_id = conn.execute(
        inquiries.insert().values(
            site_id=site_id,
            user_id=user_id,
            category=category,
            order_id=order_id,
            subject=subject,
            status="open",
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key[0]
    conn.execute(
        inquiry_messages.insert().values(
            inquiry_id=inquiry_id, author="customer", body=body, created_at=now
        )
    )
    return int(inquiry_id)


def _check_category(category: Any) -> str:
    if category not in CATEGORIES:
        raise InquiryError("category", f"one of {', '.join(CATEGORIES)}")
    return category


def _check_order(conn: sa.Connection, site_id: int, user_id: str, order_id: Any) -> str | None:
    if order_id in (None, ""):
        return None
    if (
        not isinstance(order_id, str)
        or len(order_id) > MAX_ID
        or not _owns_order(conn, site_id, user_id, order_id)
    ):
        # The same answer for someone else's order and for none: ids cannot be probed.
        raise InquiryError("order_id", "not one of your orders")
    return order_id


def check_inquiry(
    conn: sa.Connection, site_id: int, user_id: str, form: dict[str, Any]
) -> dict[str, str]:
    """Every problem of an inquiry about to be opened from ``form`` (``category``, ``subject``,
    ``body``, ``order_id``): field -> the reason :func:`open_inquiry` would give; {} when fine."""
    checks = (
        lambda: _check_category(form.get("category")),
        lambda: _text("subject", form.get("subject"), MAX_SUBJECT),
        lambda: check_body(form.get("body")),
        lambda: _check_order(conn, site_id, user_id, form.get("order_id")),
    )
    problems: dict[str, str] = {}
    for check in checks:
        try:
            check()
        except InquiryError as e:
            problems[e.field] = e.reason
    return problems


def customer_inquiries(
    conn: sa.Connection, site_id: int, user_id: str, limit: int = PAGE
) -> list[Inquiry]:
    """The customer's own inquiries, newest first (at most ``limit``, up to 500)."""
    rows = conn.execute(
        sa.select(inquiries)
        .where(inquiries.c.site_id == site_id, inquiries.c.user_id == user_id)
        .order_by(inquiries.c.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    return [_inquiry(row) for row in rows]


def customer_order_ids(
    conn: sa.Connection, site_id: int, user_id: str, limit: int = 100
) -> list[str]:
    """The shop's ids of the customer's orders, newest first: what an inquiry may be about."""
    rows = conn.execute(
        sa.select(orders.c.order_id)
        .where(orders.c.site_id == site_id, orders.c.user_id == user_id)
        .order_by(orders.c.ordered_at.desc(), orders.c.id.desc())
        .limit(limit)
    )
    return [row.order_id for row in rows]


def _owns_order(conn: sa.Connection, site_id: int, user_id: str, order_id: str) -> bool:
    return (
        conn.execute(
            sa.select(orders.c.id).where(
                orders.c.site_id == site_id,
                orders.c.order_id == order_id,
                orders.c.user_id == user_id,
            )
        ).first()
        is not None
    )


def get_inquiry(
    conn: sa.Connection, site_id: int, inquiry_id: int, user_id: str | None = None
) -> Inquiry | None:
    """The site's inquiry (the customer's own only, when ``user_id`` is given), or None."""
    query = sa.select(inquiries).where(inquiries.c.site_id == site_id, inquiries.c.id == inquiry_id)
    if user_id is not None:
        query = query.where(inquiries.c.user_id == user_id)
    row = conn.execute(query).first()
    return _inquiry(row) if row else None


def thread(conn: sa.Connection, inquiry: Inquiry) -> list[Message]:
    """An inquiry's messages, oldest first."""
    rows = conn.execute(
        sa.select(inquiry_messages)
        .where(inquiry_messages.c.inquiry_id == inquiry.id)
        .order_by(inquiry_messages.c.id)
    )
    return [Message(r.id, r.author, r.staff_id, r.body, aware(r.created_at)) for r in rows]


def _found(conn, site_id: int, inquiry_id: int, user_id: str | None = None) -> Inquiry:
    found = get_inquiry(conn, site_id, inquiry_id, user_id)
    if found is None:
        raise InquiryError("inquiry", "no such inquiry")
    return found


def _update(conn: sa.Connection, inquiry: Inquiry, **values: Any) -> None:
    conn.execute(
        inquiries.update()
        .where(inquiries.c.id == inquiry.id)
        .values(updated_at=datetime.now(UTC), **values)
    )


def add_customer_message(
    conn: sa.Connection, site_id: int, user_id: str, inquiry_id: int, body: str
) -> int:
    """The customer writes again on their own inquiry (it becomes ``open``); the message id."""
    inquiry = _found(conn, site_id, inquiry_id, user_id)
    if inquiry.status == "closed":
        raise InquiryError("body", "this inquiry is closed; open a new one")
    body = check_body(body)
    now = datetime.now(UTC)
    message_id = conn.execute(
        inquiry_messages.insert().values(
            inquiry_id=inquiry.id, author="customer", body=body, created_at=now
        )
    ).inserted_primary_key[0]
    _update(conn, inquiry, status="open")
    return int(message_id)


def reply(conn: sa.Connection, site_id: int, inquiry_id: int, staff_id: int, body: str) -> int:
    """A staff reply (the inquiry becomes ``answered``; a closed one is reopened by it).

    Returns the message id. The console's reply view (webapp/console/inquiries.py) is where the
    reply email is to be queued, in the same transaction, with :func:`reply_email`'s fields
    passed to ``accounts.outbox.enqueue_email`` once that module exists.
    """
    inquiry = _found(conn, site_id, inquiry_id)
    body = check_body(body)
    now = datetime.now(UTC)
    message_id = conn.execute(
        inquiry_messages.insert().values(
            inquiry_id=inquiry.id, author="staff", staff_id=staff_id, body=body, created_at=now
        )
    ).inserted_primary_key[0]
    values: dict[str, Any] = {"status": "answered", "closed_at": None}
    if inquiry.first_reply_at is None:
        values["first_reply_at"] = now
    _update(conn, inquiry, **values)
    return int(message_id)


def reply_email(
    conn: sa.Connection,
    inquiry: Inquiry,
    reply_text: str,
    *,
    site_name: str,
    inquiry_url: str,
    locale: str = "en",
) -> dict[str, Any] | None:
    """The outbox's arguments for a reply's email (``to``, ``template``, ``locale``,
    ``context``, ``user_id``), or None when the customer has no email address on file."""
    traits = conn.execute(
        sa.select(customers.c.traits).where(
            customers.c.site_id == inquiry.site_id, customers.c.user_id == inquiry.user_id
        )
    ).scalar()
    email = traits.get("email") if isinstance(traits, dict) else None
    if not isinstance(email, str) or "@" not in email:
        return None
    return {
        "to": email,
        "template": "inquiry_reply",
        "locale": locale,
        "context": {
            "site_name": site_name,
            "subject": inquiry.subject,
            "reply_text": reply_text,
            "inquiry_url": inquiry_url,
        },
        "user_id": inquiry.user_id,
    }


def assign(conn: sa.Connection, site_id: int, inquiry_id: int, staff_id: int | None) -> Inquiry:
    """Give the inquiry to a staff member (None: to nobody); the inquiry before the change."""
    inquiry = _found(conn, site_id, inquiry_id)
    _update(conn, inquiry, assignee_staff_id=staff_id)
    return inquiry


def set_status(conn: sa.Connection, site_id: int, inquiry_id: int, status: str) -> Inquiry:
    """Move the inquiry to ``status`` (closing keeps the time); the inquiry before the change."""
    if status not in STATUSES:
        raise InquiryError("status", f"one of {', '.join(STATUSES)}")
    inquiry = _found(conn, site_id, inquiry_id)
    closed_at = datetime.now(UTC) if status == "closed" else None
    _update(conn, inquiry, status=status, closed_at=closed_at)
    return inquiry


def queue(
    conn: sa.Connection,
    site_id: int,
    *,
    status: str | None = None,
    category: str | None = None,
    older_than_days: int | None = None,
    before_id: int | None = None,
    limit: int = PAGE,
    now: datetime | None = None,
) -> list[Inquiry]:
    """The site's inquiries, newest first, filtered; page on with ``before_id``."""
    query = sa.select(inquiries).where(inquiries.c.site_id == site_id)
    if status is not None:
        if status not in STATUSES:
            raise InquiryError("status", f"one of {', '.join(STATUSES)}")
        query = query.where(inquiries.c.status == status)
    if category is not None:
        if category not in CATEGORIES:
            raise InquiryError("category", f"one of {', '.join(CATEGORIES)}")
        query = query.where(inquiries.c.category == category)
    if older_than_days is not None:
        if older_than_days < 0 or older_than_days > 3650:
            raise InquiryError("age", "a number of days from 0 to 3650")
        cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
        query = query.where(inquiries.c.created_at <= cutoff)
    if before_id is not None:
        query = query.where(inquiries.c.id < before_id)
    query = query.order_by(inquiries.c.id.desc()).limit(max(1, min(limit, 500)))
    return [_inquiry(row) for row in conn.execute(query)]


def customer_summary(
    conn: sa.Connection, site_id: int, user_id: str, latest: int = 5
) -> dict[str, Any]:
    """For the customer 360 page: ``counts`` per status (and ``total``), the ``latest`` ones."""
    rows = conn.execute(
        sa.select(inquiries.c.status, sa.func.count())
        .where(inquiries.c.site_id == site_id, inquiries.c.user_id == user_id)
        .group_by(inquiries.c.status)
    ).all()
    counts = {status: 0 for status in STATUSES} | {status: n for status, n in rows}
    newest = conn.execute(
        sa.select(inquiries)
        .where(inquiries.c.site_id == site_id, inquiries.c.user_id == user_id)
        .order_by(inquiries.c.id.desc())
        .limit(latest)
    )
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "latest": [_inquiry(row) for row in newest],
    }


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def inquiry_report(conn: sa.Connection, site_id: int, start: date, end: date) -> dict[str, Any]:
    """Inquiries opened from ``start`` to ``end`` (whole UTC days): volume and first replies.

    ``by_category``: per category, inquiries opened, how many got a staff reply, and the median
    hours from opening to the first reply (None without replies); a row ``all`` sums them.
    ``days``: inquiries opened per day and category.
    """
    rows = conn.execute(
        sa.select(inquiries.c.category, inquiries.c.created_at, inquiries.c.first_reply_at).where(
            inquiries.c.site_id == site_id,
            inquiries.c.created_at >= _day_start(start),
            inquiries.c.created_at < _day_start(end + timedelta(days=1)),
        )
    ).all()
    opened: Counter[str] = Counter()
    waits: dict[str, list[float]] = {c: [] for c in CATEGORIES}
    per_day: dict[date, Counter[str]] = {
        start + timedelta(days=i): Counter() for i in range((end - start).days + 1)
    }
    for category, created_at, first_reply_at in rows:
        created = aware(created_at)
        opened[category] += 1
        per_day[created.date()][category] += 1
        if first_reply_at is not None:
            waits[category].append((aware(first_reply_at) - created).total_seconds() / 3600)

    def line(name: str, count: int, hours: list[float]) -> dict[str, Any]:
        return {
            "category": name,
            "opened": count,
            "replied": len(hours),
            "median_hours_to_first_reply": round(statistics.median(hours), 2) if hours else None,
        }

    by_category = [line(c, opened[c], waits[c]) for c in CATEGORIES]
    every = [h for c in CATEGORIES for h in waits[c]]
    by_category.append(line("all", sum(opened.values()), every))
    days = [{"day": day, **{c: counts[c] for c in CATEGORIES}} for day, counts in per_day.items()]
    return {"by_category": by_category, "days": days}
