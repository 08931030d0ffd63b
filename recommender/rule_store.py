"""Merchandising rules per site and placement: stored, checked, loaded for serving, announced.

A site's rules are a :class:`RuleBook`: one :class:`~recommender.rules.Rules` per placement that
has its own, and the default (placement ``''``) for every other. Each change bumps the site's
version and is published on :data:`RULES_CHANNEL`, so every web process reloads the book (one
query) within moments; the serving layer also compares versions on its catalogue refresh, in
case a message was lost. Serving resolves a placement's rules in memory (:meth:`RuleBook.resolve`),
never per request from SQL.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import redis
import sqlalchemy as sa

from recommender.rule_document import categories, item_ids
from recommender.rules import InvalidRules, Rules, VipRules
from recommender.schema import merch_rules, merch_rules_versions
from tracking.db import aware, chunks

log = logging.getLogger("ecrm.recommender.rules")

RULES_CHANNEL = "ecrm:rules"  # message "<site_id>": that site's rules changed
DEFAULT = ""  # the placement key of a site's default rules
DEFAULT_NAME = "default"  # how the API and the console name it


@dataclass(frozen=True)
class StoredRules:
    """One placement's rules as stored, with who changed them last and when."""

    placement: str
    rules: Rules
    version: int
    updated_at: datetime
    updated_by: str


@dataclass
class RuleBook:
    """A site's rules, loaded: what serving resolves a placement against."""

    site_id: int
    version: int = 0
    placements: dict[str, StoredRules] = field(default_factory=dict)
    _resolved: dict[tuple[str, bool], tuple[Rules, str, datetime | None]] = field(
        default_factory=dict
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def rules_for(self, placement: str | None) -> Rules:
        """The placement's own rules, else the site's default, else the built-in defaults."""
        for key in (placement_key(placement), DEFAULT):
            found = self.placements.get(key)
            if found is not None:
                return found.rules
        return Rules()

    def resolve(
        self, placement: str | None, now: datetime | None = None, *, vip: bool = False
    ) -> tuple[Rules, str]:
        """The rules in force for a placement now (campaigns applied; for a VIP customer, its
        VIP variant too) and their fingerprint.

        Kept until the next campaign starts or ends: a dict lookup per request.
        """
        now = now or datetime.now(UTC)
        key = (placement_key(placement), vip)
        found = self._resolved.get(key)
        if found is not None and (found[2] is None or now < found[2]):
            return found[0], found[1]
        base = self.rules_for(placement)
        rules = base.at(now)
        # Everyone else keeps only the VIPs' "only" (serving answers them no items).
        rules = rules.for_vip() if vip else replace(rules, vip=VipRules(only=rules.vip.only))
        result = (rules, rules.fingerprint(), base.next_change(now))
        with self._lock:
            if len(self._resolved) > 1000:  # placements are few; ids sent at random are not
                self._resolved.clear()
            self._resolved[key] = result
        return result[0], result[1]


def placement_key(placement: str | None) -> str:
    """The stored key of a placement name ('default' and none are the site's default)."""
    return DEFAULT if placement in (None, "", DEFAULT_NAME) else placement


def placement_name(key: str) -> str:
    """How the API and the console name a stored placement key."""
    return DEFAULT_NAME if key == DEFAULT else key


def load(engine: sa.Engine, site_id: int) -> RuleBook:
    """Read a site's rules (two small queries). A stored document that no longer parses is
    logged and skipped (its placement falls back to the default) rather than stop serving."""
    with engine.connect() as conn:
        version = current_version(conn, site_id)
        rows = conn.execute(sa.select(merch_rules).where(merch_rules.c.site_id == site_id)).all()
    book = RuleBook(site_id, version)
    for row in rows:
        try:
            rules = Rules.from_dict(row.document)
        except InvalidRules as e:
            log.error(
                "site %s placement %r: stored rules unreadable (%s)", site_id, row.placement, e
            )
            continue
        book.placements[row.placement] = StoredRules(
            row.placement, rules, row.version, aware(row.updated_at), row.updated_by
        )
    return book


def current_version(conn: sa.Connection | sa.Engine, site_id: int) -> int:
    """The site's rules version (0 before the first change)."""
    query = sa.select(merch_rules_versions.c.version).where(
        merch_rules_versions.c.site_id == site_id
    )
    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return c.execute(query).scalar() or 0
    return conn.execute(query).scalar() or 0


def check(conn: sa.Connection | sa.Engine, site_id: int, rules: Rules) -> list[str]:
    """Refuse pins and boosts of items the catalogue lacks; warn of unknown categories.

    Raises :class:`InvalidRules` naming the field; returns the warnings (text for people).
    """
    from tracking.schema import items

    if isinstance(conn, sa.Engine):
        with conn.connect() as c:
            return check(c, site_id, rules)
    named = item_ids(rules)
    wanted = sorted({i for ids in named.values() for i in ids} | set(rules.exclude_items))
    known: set[str] = set()
    for part in chunks(wanted):
        known |= set(
            conn.execute(
                sa.select(items.c.item_id).where(
                    items.c.site_id == site_id, items.c.item_id.in_(part)
                )
            ).scalars()
        )
    for where, ids in named.items():
        for item_id in ids:
            if item_id not in known:
                raise InvalidRules(where, f"no item {item_id!r} in this site's catalogue")
    warnings = [
        f"exclude_items: {item_id!r} is not in the catalogue (yet)"
        for item_id in rules.exclude_items
        if item_id not in known
    ]
    present = set(
        conn.execute(
            sa.select(items.c.category).where(items.c.site_id == site_id).distinct()
        ).scalars()
    )
    for where, prefixes in categories(rules).items():
        for prefix in prefixes:
            if not any(c == prefix or (c or "").startswith(prefix + "/") for c in present):
                warnings.append(f"{where}: no item is in category {prefix!r} (yet)")
    return warnings


def _bump(conn: sa.Connection, site_id: int, now: datetime) -> int:
    table = merch_rules_versions
    updated = conn.execute(
        table.update()
        .where(table.c.site_id == site_id)
        .values(version=table.c.version + 1, updated_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(table.insert().values(site_id=site_id, version=1, updated_at=now))
    return current_version(conn, site_id)


def save(conn: sa.Connection, site_id: int, placement: str, rules: Rules, *, by: str) -> int:
    """Store a placement's rules inside the caller's transaction; the site's new version."""
    now = datetime.now(UTC)
    version = _bump(conn, site_id, now)
    key = placement_key(placement)
    values = {
        "document": rules.to_dict(),
        "version": version,
        "updated_at": now,
        "updated_by": by[:254],
    }
    where = (merch_rules.c.site_id == site_id, merch_rules.c.placement == key)
    if conn.execute(merch_rules.update().where(*where).values(**values)).rowcount == 0:
        conn.execute(merch_rules.insert().values(site_id=site_id, placement=key, **values))
    return version


def remove(conn: sa.Connection, site_id: int, placement: str) -> int | None:
    """Delete a placement's own rules (it falls back to the default); the new version, or None
    when it had none."""
    key = placement_key(placement)
    deleted = conn.execute(
        merch_rules.delete().where(merch_rules.c.site_id == site_id, merch_rules.c.placement == key)
    )
    if deleted.rowcount == 0:
        return None
    return _bump(conn, site_id, datetime.now(UTC))


def announce(client: redis.Redis | None, site_id: int) -> None:
    """Tell every web process to reload this site's rules now (else at its next refresh)."""
    if client is None:
        return
    try:
        client.publish(RULES_CHANNEL, str(site_id))
    except redis.RedisError as e:
        log.warning(
            "could not announce a rules change of site %s (%s); refresh catches it", site_id, e
        )


def as_json(book: RuleBook) -> dict[str, Any]:
    """The book as the API answers it: version, default, placements, and who changed what."""
    default = book.placements.get(DEFAULT)
    return {
        "version": book.version,
        "default": (default.rules if default else Rules()).to_dict(),
        "placements": {
            key: stored.rules.to_dict()
            for key, stored in sorted(book.placements.items())
            if key != DEFAULT
        },
        "updated": {
            placement_name(key): {
                "version": stored.version,
                "at": stored.updated_at.isoformat().replace("+00:00", "Z"),
                "by": stored.updated_by,
            }
            for key, stored in sorted(book.placements.items())
        },
    }
