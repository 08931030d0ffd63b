"""Personalisation on or off, per customer, and its effect on serving and training.

Off means: the recommendation API serves this customer the site's popular items (``source``
``personalisation_off``), their cached answers are dropped at once, and the next training leaves
their events out, so the next model has no factors for them. The choice is kept where the
recommender can read it (``tracking.schema.personalisation_opt_outs`` through
:mod:`recommender.opt_outs`, as this package may import the recommender but not the other way
round), and every change is also a consent record (:mod:`accounts.consent`).
"""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa

from accounts import consent, webhooks
from recommender import opt_outs

log = logging.getLogger("ecrm.accounts")


def personalisation_enabled(conn: sa.Connection, site_id: int, user_id: str) -> bool:
    """Does this customer get personal recommendations? (on until they turn it off)"""
    return not opt_outs.is_opted_out(conn, site_id, user_id)


def set_personalisation(
    conn: sa.Connection,
    site_id: int,
    user_id: str,
    enabled: bool,
    *,
    source: str,
    wording: str,
    redis_client: redis.Redis | None = None,
) -> bool:
    """Turn personalisation on or off in the caller's transaction; True when it changed.

    Always appends a consent record (the customer confirmed a choice, even an unchanged one).
    With ``redis_client`` every web process hears of the change at once and the customer's
    cached answers are voided and deleted (:func:`recommender.opt_outs.announce`); without
    it, web processes pick the change up when they next read the list (every
    ``catalogue_refresh`` seconds, 15 by default).
    """
    if not isinstance(enabled, bool):
        raise consent.ConsentError("enabled", "true or false")
    consent.record(
        conn, site_id, user_id, consent.PERSONALISATION, enabled, source=source, wording=wording
    )
    changed = opt_outs.mark(conn, site_id, user_id, personalised=enabled)
    if changed:
        webhooks.emit(
            conn,
            site_id=site_id,
            event_type="preferences.updated",
            data={"user_id": user_id, "personalisation": enabled, "source": source},
        )
    if redis_client is not None:
        try:
            opt_outs.announce(redis_client, site_id, user_id, personalised=enabled)
        except redis.RedisError as e:
            # The choice is stored; web processes catch up when they next read the list.
            log.warning("could not announce a personalisation change on site %s: %s", site_id, e)
    return changed
