"""Customers who turned personalisation off: served popular items, left out of training.

The list lives in ``tracking.schema.personalisation_opt_outs`` (a row while it is off), written by
``accounts.privacy`` (which may import this package; this package may not import accounts).
Serving keeps each site's list in memory (:class:`recommender.site_state.SiteStates`): the check
on the hot path is a set lookup. A change reaches every web process at once through
:data:`PERSONALISATION_CHANNEL` (message ``<site_id>\\t<user_id>\\t<0|1>``, 1 = personalised) and,
should a message be lost, by the list being read again with the catalogue (every
``catalogue_refresh`` seconds). :func:`announce` also voids and deletes the customer's cached
answers, so no personal answer of theirs is served or kept in Redis after the change.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pandas as pd
import redis
import sqlalchemy as sa

from tracking.activity import GENERATION_TTL_SECONDS, INVALIDATION_CHANNEL, generation_key
from tracking.schema import personalisation_opt_outs

log = logging.getLogger("ecrm.recommender.serving")

PERSONALISATION_CHANNEL = "ecrm:personalisation"


def opted_out(conn: sa.Connection, site_id: int) -> set[str]:
    """The user ids of a site's customers with personalisation off."""
    return set(
        conn.execute(
            sa.select(personalisation_opt_outs.c.user_id).where(
                personalisation_opt_outs.c.site_id == site_id
            )
        ).scalars()
    )


def is_opted_out(conn: sa.Connection, site_id: int, user_id: str) -> bool:
    """Has this customer turned personalisation off? (one primary-key lookup)"""
    return (
        conn.execute(
            sa.select(personalisation_opt_outs.c.user_id).where(
                personalisation_opt_outs.c.site_id == site_id,
                personalisation_opt_outs.c.user_id == user_id,
            )
        ).first()
        is not None
    )


def mark(conn: sa.Connection, site_id: int, user_id: str, personalised: bool) -> bool:
    """Record the customer's choice in the caller's transaction; True when it changed."""
    table = personalisation_opt_outs
    if personalised:
        done = conn.execute(
            table.delete().where(table.c.site_id == site_id, table.c.user_id == user_id)
        )
        return done.rowcount > 0
    if is_opted_out(conn, site_id, user_id):
        return False
    conn.execute(table.insert().values(site_id=site_id, user_id=user_id, since=datetime.now(UTC)))
    return True


def announce(client: redis.Redis, site_id: int, user_id: str, personalised: bool) -> int:
    """Tell every web process, and drop the customer's cached answers; returns keys deleted.

    Their generation counter moves (any entry still in Redis is void at once), the in-process
    copies are evicted through the invalidation channel, and their entries under every model
    version and rules fingerprint are deleted (a SCAN of the ``ecrm:recs:<site>:`` keys).
    """
    visitor = f"u:{user_id}"
    pipe = client.pipeline(transaction=False)
    gen = generation_key(site_id, visitor)
    pipe.incr(gen)
    pipe.expire(gen, GENERATION_TTL_SECONDS)
    pipe.publish(PERSONALISATION_CHANNEL, f"{site_id}\t{user_id}\t{int(personalised)}")
    pipe.publish(INVALIDATION_CHANNEL, f"{site_id}\t{visitor}")
    pipe.execute()
    deleted = 0
    pattern = f"ecrm:recs:{site_id}:*:{_glob_escape(visitor)}"
    batch = []
    for key in client.scan_iter(match=pattern, count=1000):
        # The pattern's * may span a ':' inside the visitor part of another key: check exactly.
        if key.decode().split(":", 4)[-1] == visitor:
            batch.append(key)
    if batch:
        deleted = client.delete(*batch)
    return deleted


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def parse_message(data: str) -> tuple[int, str, bool] | None:
    """(site_id, user_id, personalised) from a channel message, or None if malformed."""
    site, _, rest = data.partition("\t")
    user_id, _, flag = rest.rpartition("\t")
    if not site.isdigit() or not user_id or flag not in ("0", "1"):
        return None
    return int(site), user_id, flag == "1"


def without_customers(frame: pd.DataFrame, user_ids: set[str]) -> pd.DataFrame:
    """A :func:`recommender.event_frames.read_events` frame without these customers' rows."""
    if not user_ids or not len(frame):
        return frame
    keep = ~frame["user_id"].isin(list(user_ids)).to_numpy()
    if keep.all():
        return frame
    trimmed = frame[keep].reset_index(drop=True)
    if isinstance(trimmed["user_id"].dtype, pd.CategoricalDtype):
        trimmed["user_id"] = trimmed["user_id"].cat.remove_unused_categories()
    return trimmed
