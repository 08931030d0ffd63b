"""Customers and their identities: written from new events, and a customer's stitched history.

An identity links an anonymous id to a user id (identify, alias, or any event carrying both);
a customer row keeps a user id's traits and when it was first and last seen, and its search keys
follow its verified traits (:mod:`tracking.customer_lookup`). Only verified user ids link or
overwrite anything (:mod:`tracking.identity`); a claim adds unverified traits only.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from tracking import customer_lookup, identity
from tracking.db import aware, chunks, insert_ignore, upsert
from tracking.schema import customers, events, identities


def write_identities(conn: sa.Connection, site_id: int, new_events: list[dict]) -> None:
    # Only verified user ids reach here: identity.distrust took the others' away, so a browser
    # cannot link its anonymous id (or an alias) to a customer it merely names.
    rows = {}
    for event in new_events:
        if event["type"] == "alias":
            if event.get("userId") and event.get("previousId"):
                key = (event["previousId"], event["userId"])
                rows.setdefault(key, ("alias", event["_ts"]))
        elif event.get("anonymousId") and event.get("userId"):
            key = (event["anonymousId"], event["userId"])
            source = "identify" if event["type"] == "identify" else "event"
            rows.setdefault(key, (source, event["_ts"]))
    if rows:
        conn.execute(
            insert_ignore(conn.engine, identities),
            [
                {
                    "site_id": site_id,
                    "anonymous_id": anonymous_id,
                    "user_id": user_id,
                    "source": source,
                    "first_seen_at": ts,
                }
                for (anonymous_id, user_id), (source, ts) in rows.items()
            ],
        )


def _event_traits(event: dict) -> dict | None:
    traits = event.get("traits") if event["type"] == "identify" else None
    traits = traits or (event.get("context") or {}).get("traits")
    return traits if isinstance(traits, dict) else None


def write_customers(conn: sa.Connection, site_id: int, new_events: list[dict]) -> None:
    """Upsert customers: verified traits from verified user ids, the rest as unverified traits.

    An unverified claim (identity.CLAIMED) never touches ``traits`` nor the seen times of a
    customer who exists; it only adds to ``unverified_traits`` (creating the row if needed).
    """
    seen: dict[str, dict] = {}
    for event in new_events:
        user_id = event.get("userId")
        claimed = event.get(identity.CLAIMED) if user_id is None else None
        if not user_id and not claimed:
            continue
        ts = event["_ts"]
        customer = seen.setdefault(
            user_id or claimed,
            {
                "traits": {},
                "unverified_traits": {},
                "first_seen_at": ts,
                "last_seen_at": ts,
                "verified": False,
            },
        )
        traits = _event_traits(event)
        if user_id:
            if not customer["verified"]:  # times so far came from claims: the truth starts here
                customer.update(verified=True, first_seen_at=ts, last_seen_at=ts)
            customer["first_seen_at"] = min(customer["first_seen_at"], ts)
            customer["last_seen_at"] = max(customer["last_seen_at"], ts)
            if traits:
                customer["traits"].update(traits)
        elif traits:
            customer["unverified_traits"].update(traits)
    if not seen:
        return
    before: dict[str, dict] = {}  # the verified traits stored so far, of customers who exist
    for chunk in chunks(list(seen)):
        for row in conn.execute(
            sa.select(customers).where(
                customers.c.site_id == site_id, customers.c.user_id.in_(chunk)
            )
        ).mappings():
            customer = seen[row["user_id"]]
            before[row["user_id"]] = row["traits"] or {}
            customer["traits"] = {**before[row["user_id"]], **customer["traits"]}
            customer["unverified_traits"] = {
                **(row["unverified_traits"] or {}),
                **customer["unverified_traits"],
            }
            first, last = aware(row["first_seen_at"]), aware(row["last_seen_at"])
            if customer["verified"]:
                customer["first_seen_at"] = min(customer["first_seen_at"], first)
                customer["last_seen_at"] = max(customer["last_seen_at"], last)
            else:
                customer["first_seen_at"], customer["last_seen_at"] = first, last
    conn.execute(
        upsert(
            conn.engine,
            customers,
            ["site_id", "user_id"],
            ["traits", "unverified_traits", "first_seen_at", "last_seen_at"],
        ),
        [
            {
                "site_id": site_id,
                "user_id": user_id,
                "traits": c["traits"],
                "unverified_traits": c["unverified_traits"] or None,
                "first_seen_at": c["first_seen_at"],
                "last_seen_at": c["last_seen_at"],
            }
            for user_id, c in seen.items()
        ],
    )
    customer_lookup.refresh(conn, site_id, {u: c["traits"] for u, c in seen.items()}, before)


def customer_history(conn: sa.Connection, site_id: int, user_id: str) -> list[sa.Row]:
    """A customer's events, including anonymous browsing stitched to them, oldest first."""
    anonymous_ids = sa.select(identities.c.anonymous_id).where(
        identities.c.site_id == site_id, identities.c.user_id == user_id
    )
    return conn.execute(
        sa.select(events)
        .where(
            events.c.site_id == site_id,
            sa.or_(events.c.user_id == user_id, events.c.anonymous_id.in_(anonymous_ids)),
        )
        .order_by(events.c.timestamp, events.c.id)
    ).all()


def age_on(born: date, today: date) -> int:
    """Whole years from ``born`` to ``today``."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def with_current_age(traits: dict, today: date) -> dict:
    """``traits`` with ``age`` as of ``today`` when they hold a valid ``birthday`` (YYYY-MM-DD):
    a stored age would stop being true on the next birthday."""
    birthday = traits.get("birthday")
    if not isinstance(birthday, str):
        return traits
    try:
        born = date.fromisoformat(birthday)
    except ValueError:
        return traits
    if born > today:
        return traits
    return {**traits, "age": age_on(born, today)}
