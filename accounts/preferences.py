"""Communication preferences: channel (email, SMS, push) x topic opt-ins, kept as consent records.

A site has its own list of topics (:func:`topics`; :data:`DEFAULT_TOPICS` until it sets one),
each with a default for customers who never chose. A customer's current preferences are derived
from their consent records (:mod:`accounts.consent`, ``what`` = ``<channel>:<topic>``): the newest
record of a choice wins, and every change :func:`set_preferences` makes is a new record with its
time, source and the exact wording shown. Nothing is stored twice, so the state and its history
cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from accounts import consent, webhooks
from accounts.prefs_schema import communication_topics
from tracking.errors import FieldError

CHANNELS = ("email", "sms", "push")
TOPIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_TOPICS = 20
MAX_LABEL = 120


class PreferenceError(FieldError):
    """A preference or topic list that cannot be stored: ``field`` says which, ``reason`` why."""


@dataclass(frozen=True)
class Topic:
    """A subject a site writes to customers about."""

    topic: str
    label: str
    default_granted: bool = False


# Marketing needs an opt-in (granted False until chosen); order updates are the service itself.
DEFAULT_TOPICS: tuple[Topic, ...] = (
    Topic("offers", "Offers and discounts", False),
    Topic("recommendations", "Products picked for you", False),
    Topic("order_updates", "Updates about your orders", True),
    Topic("newsletter", "Newsletter", False),
)


@dataclass(frozen=True)
class Preference:
    """One channel x topic choice as it stands: the default until the customer chose."""

    channel: str
    topic: str
    label: str
    granted: bool
    chosen: bool  # False: the topic's default, no record yet
    at: datetime | None = None
    source: str | None = None

    @property
    def what(self) -> str:
        """The consent record's ``what`` for this choice."""
        return f"{self.channel}:{self.topic}"


def topics(conn: sa.Connection, site_id: int) -> list[Topic]:
    """The site's topics in their order (the defaults when it has set none)."""
    rows = conn.execute(
        sa.select(communication_topics)
        .where(communication_topics.c.site_id == site_id)
        .order_by(communication_topics.c.position)
    ).all()
    if not rows:
        return list(DEFAULT_TOPICS)
    return [Topic(r.topic, r.label, bool(r.default_granted)) for r in rows]


def set_topics(conn: sa.Connection, site_id: int, chosen: Sequence[Topic]) -> None:
    """Replace the site's topics (names ``[a-z][a-z0-9_]*``, up to 40 characters, unique)."""
    if not chosen or len(chosen) > MAX_TOPICS:
        raise PreferenceError("topics", f"between 1 and {MAX_TOPICS} topics")
    seen = set()
    for position, t in enumerate(chosen):
        if not isinstance(t.topic, str) or not TOPIC_NAME.fullmatch(t.topic):
            raise PreferenceError(
                f"topics[{position}].topic", "lower-case letters, digits and _, 1-40 characters"
            )
        if t.topic in seen:
            raise PreferenceError(f"topics[{position}].topic", f"{t.topic} is listed twice")
        if not isinstance(t.label, str) or not t.label.strip() or len(t.label) > MAX_LABEL:
            raise PreferenceError(f"topics[{position}].label", f"1 to {MAX_LABEL} characters")
        seen.add(t.topic)
    conn.execute(communication_topics.delete().where(communication_topics.c.site_id == site_id))
    conn.execute(
        communication_topics.insert(),
        [
            {
                "site_id": site_id,
                "topic": t.topic,
                "label": t.label.strip(),
                "default_granted": bool(t.default_granted),
                "position": position,
            }
            for position, t in enumerate(chosen)
        ],
    )


def get_preferences(conn: sa.Connection, site_id: int, user_id: str) -> list[Preference]:
    """Every channel x topic of the site for this customer: their newest choice or the default."""
    made = consent.current(conn, site_id, user_id)
    found = []
    for channel in CHANNELS:
        for t in topics(conn, site_id):
            record = made.get(f"{channel}:{t.topic}")
            if record is None:
                found.append(Preference(channel, t.topic, t.label, t.default_granted, False))
            else:
                found.append(
                    Preference(
                        channel, t.topic, t.label, record.granted, True, record.at, record.source
                    )
                )
    return found


def allows(conn: sa.Connection, site_id: int, user_id: str, channel: str, topic: str) -> bool:
    """May the shop write to this customer on ``channel`` about ``topic``?"""
    for p in get_preferences(conn, site_id, user_id):
        if p.channel == channel and p.topic == topic:
            return p.granted
    return False  # a topic the site does not have


def set_preferences(
    conn: sa.Connection,
    site_id: int,
    user_id: str,
    changes: Mapping[str, bool],
    *,
    source: str,
    wording: str | Mapping[str, str],
) -> list[int]:
    """Apply ``{"email:offers": True, ...}``; one consent record per choice that changed.

    ``wording`` is the text the customer was shown: one for every choice, or a mapping of each
    choice (``"email:offers"``) to its own (as a page shows a label per box).
    Raises :class:`PreferenceError` naming the first bad entry (nothing is stored then).
    Returns the new records' ids (none when nothing changed).
    """
    if not isinstance(changes, Mapping) or not changes:
        raise PreferenceError("preferences", "at least one channel:topic choice")
    known = {t.topic for t in topics(conn, site_id)}
    for what, granted in changes.items():
        channel, _, topic = what.partition(":") if isinstance(what, str) else ("", "", "")
        if channel not in CHANNELS:
            choices = ", ".join(CHANNELS)
            raise PreferenceError(str(what)[:80], f"the channel must be one of {choices}")
        if topic not in known:
            raise PreferenceError(what[:80], f"this site has no topic {topic[:40]!r}")
        if not isinstance(granted, bool):
            raise PreferenceError(what, "true or false")
    worded = {what: _wording_of(wording, what) for what in changes}
    for what in changes:
        consent.check(user_id, "preferences", source, worded[what])
    now = {p.what: p.granted for p in get_preferences(conn, site_id, user_id)}
    records = [
        consent.record(conn, site_id, user_id, what, granted, source=source, wording=worded[what])
        for what, granted in changes.items()
        if now.get(what) != granted
    ]
    if records:  # the shop hears of a change, in the change's own transaction
        current = {p.what: p.granted for p in get_preferences(conn, site_id, user_id)}
        webhooks.emit(
            conn,
            site_id=site_id,
            event_type="preferences.updated",
            data={"user_id": user_id, "preferences": current, "source": source},
        )
    return records


def _wording_of(wording: str | Mapping[str, str], what: str) -> str:
    if isinstance(wording, Mapping):
        found = wording.get(what)
        if not isinstance(found, str):
            raise PreferenceError(what, "no wording was given for this choice")
        return found
    return wording
