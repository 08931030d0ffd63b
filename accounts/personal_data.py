"""Where a person's data lives in SQL: one registry, read by export and erasure alike.

Every table that holds a row about a customer, or a column that links to one, is either a
:class:`Holding` in :data:`HOLDINGS` (how to find the person's rows, whether they are exported,
and how they are erased) or listed in :data:`EXCLUDED` with the reason it is neither exported nor
erased. tests/test_personal_data.py reads the live schema of every package and fails when a table
with a customer-linking column (:data:`LINK_COLUMNS`) is in neither list, so a new table is one
line here.

A person (:class:`Person`) is a customer of one site: their user id, every anonymous id stitched
to them (``identities``), their emails (traits and search keys), sessions and orders. A table
finds their rows through its link columns, each of a :data:`LINK_KINDS` kind:

- ``user``: the user id; ``anonymous``: one of the anonymous ids; ``visitor``: either (the
  holdout identity and the session visitor are the anonymous id, else the user id);
- ``email``: one of the person's emails; ``session`` / ``order``: one of their session / order
  ids (rows reached through a session or an order of theirs);
- ``text``: a JSON text that names one of their ids, as a quoted string (raw payloads kept of
  refused events and dead letters).

Erasure (:data:`ERASE_MODES`): ``delete`` the rows; ``unlink`` keeps the row with its link and
personal columns set to NULL (orders: amounts kept for accounting); ``keep`` leaves rows that hold
nothing personal once what links them is gone (order lines, attributions: amounts and items of an
order whose link was removed). ``custom`` tables are handled by code of their own in
accounts.export and accounts.erasure (the interaction log's chunks are rewritten without the
person's rows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from accounts import messaging_schema, portal_schema, prefs_schema
from accounts import schema as accounts_schema
from analytics import schema as analytics_schema
from analytics import trigger_schema, value_schema
from tracking import schema as tracking_schema
from tracking.identity import MAX_ID_LENGTH, UNVERIFIED_PREFIX

# Column names that link a row to a customer: a table with one must be registered or excluded.
LINK_COLUMNS = frozenset(
    {
        "user_id",
        "anonymous_id",
        "visitor_id",
        "customer_id",
        "email",
        "phone",
        "recipient",
        "to_address",
    }
)
LINK_KINDS = ("user", "anonymous", "visitor", "email", "session", "order", "text")
ERASE_MODES = ("delete", "unlink", "keep", "custom")


@dataclass(frozen=True)
class Holding:
    """One table holding a person's rows: how they are found, exported and erased."""

    table: sa.Table
    links: dict[str, str]  # column -> kind (LINK_KINDS)
    erase: str = "delete"  # ERASE_MODES
    unlink: tuple[str, ...] = ()  # columns set to NULL when erase is "unlink"
    note: str = ""  # what the export and the README say about it
    export: bool = True
    site_column: str | None = "site_id"  # None: the table has no site (dead letters)

    @property
    def name(self) -> str:
        return str(self.table.name)  # quoted_name is a str subclass JSON encoders refuse


@dataclass(frozen=True)
class Person:
    """A customer of one site, with every id that leads to their rows."""

    site_id: int
    user_id: str
    anonymous_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    session_ids: tuple[str, ...] = ()
    order_ids: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def values(self, kind: str) -> tuple[str, ...]:
        """The person's ids of one link kind."""
        if kind == "user":
            return (self.user_id,)
        if kind == "anonymous":
            return self.anonymous_ids
        if kind in ("visitor", "text"):
            return (self.user_id, *self.anonymous_ids)
        if kind == "email":
            return self.emails
        if kind == "session":
            return self.session_ids
        if kind == "order":
            return self.order_ids
        raise ValueError(f"unknown link kind {kind!r}")


t, a, c = tracking_schema, analytics_schema, accounts_schema
portal, mail, prefs = portal_schema, messaging_schema, prefs_schema

HOLDINGS: tuple[Holding, ...] = (
    Holding(t.customers, {"user_id": "user"}, note="the customer: traits and claims"),
    Holding(t.customer_lookup, {"user_id": "user"}, note="search keys: id, email, name words"),
    Holding(
        t.identities,
        {"user_id": "user", "anonymous_id": "anonymous"},
        note="anonymous ids (devices, browsers) stitched to the customer",
    ),
    Holding(t.events, {"user_id": "user", "anonymous_id": "anonymous"}, note="every event"),
    Holding(
        t.sessions,
        {"user_id": "user", "anonymous_id": "anonymous", "visitor_id": "visitor"},
        note="visits",
    ),
    Holding(
        t.orders,
        {"user_id": "user", "anonymous_id": "anonymous"},
        erase="unlink",
        unlink=("user_id", "anonymous_id"),
        note="orders; on erasure kept for accounting (amounts, currency, time, order id) with "
        "the customer's ids removed",
    ),
    Holding(
        t.order_lines,
        {"order_id": "order"},
        erase="keep",
        note="the lines of the customer's orders; kept for accounting (items, prices): they "
        "name no one once their order is unlinked",
    ),
    Holding(
        t.attributions,
        {"order_id": "order"},
        erase="keep",
        note="order lines credited to a recommendation click; kept for the reports: they name "
        "no one once their order is unlinked",
    ),
    Holding(
        t.interaction_chunks,
        {},
        erase="custom",
        note="the training log's rows of the customer (item, event, time); rewritten without "
        "them on erasure",
    ),
    Holding(
        t.rejected_events,
        {"raw": "text"},
        note="refused events whose raw payload names the customer",
    ),
    Holding(
        t.dead_letters,
        {"payload": "text"},
        site_column=None,
        note="stream entries the ingest worker could not store that name the customer",
    ),
    Holding(
        a.rollup_visitors,
        {"visitor_id": "visitor"},
        note="per-visitor daily counts (the basis of lift); site-wide rollups stay, they hold "
        "no one's id",
    ),
    Holding(a.rollup_visitor_revenue, {"visitor_id": "visitor"}, note="per-visitor revenue"),
    Holding(
        value_schema.value_scores,
        {"user_id": "user"},
        note="customer value scores per refresh day: RFM, segment, P(alive), lifetime value",
    ),
    Holding(
        value_schema.segment_export_members,
        {"user_id": "user"},
        note="the campaign exports the customer was in, as a target or held back as control",
    ),
    Holding(
        trigger_schema.trigger_fired,
        {"user_id": "user"},
        note="behaviour-change triggers fired for the customer, with the values that met them",
    ),
    Holding(
        trigger_schema.campaign_list_members,
        {"user_id": "user"},
        note="the campaign lists trigger rules put the customer on: when, by which rule",
    ),
    Holding(
        t.personalisation_opt_outs,
        {"user_id": "user"},
        note="personalisation turned off, since when",
    ),
    Holding(
        prefs.consent_records,
        {"user_id": "user"},
        note="every consent given or withdrawn: what, when, from where, the wording shown",
    ),
    Holding(
        prefs.inquiries,
        {"user_id": "user"},
        note="inquiries (questions, complaints, returns, suggestions); their messages are "
        "exported and erased with them (accounts.export, accounts.erasure)",
    ),
    Holding(
        portal.customer_addresses,
        # The phone is found through the user id; the text match on it selects no other row.
        {"user_id": "user", "phone": "text"},
        note="the address book",
    ),
    Holding(
        portal.portal_codes,
        {"user_id": "user", "email": "email"},
        export=False,
        note="one-time sign-in and email-change codes (kept as HMACs; nothing to read)",
    ),
    Holding(portal.portal_sessions, {"user_id": "user"}, note="portal sessions"),
    Holding(
        portal.portal_tokens,
        {"user_id": "user"},
        export=False,
        note="single-use portal links from the shop (digests; nothing to read)",
    ),
    Holding(
        mail.email_outbox,
        {"user_id": "user", "to_address": "email"},
        note="emails to the customer, queued or sent (the .eml files of var/mail/ too)",
    ),
    Holding(
        mail.webhook_deliveries,
        {"user_id": "user"},
        note="notices to the shop about the customer (profile, addresses, preferences); erased "
        "by accounts.webhooks.erase_customer, which keeps a customer.deleted until it is "
        "delivered or given up (then it loses the id)",
    ),
    Holding(
        a.funnel_sessions,
        {"session_id": "session"},
        export=False,
        note="the furthest funnel step of each of the customer's sessions (bookkeeping of the "
        "funnel rollup; the sessions themselves are exported)",
    ),
)

# Tables with a customer-linking column that are neither exported nor erased, and why.
EXCLUDED: dict[str, str] = {
    "staff": "staff accounts: their email is a staff member's, not a customer's",
    "audit_log": "staff actions; its email is the acting staff member's (or an address tried at "
    "staff sign-in), and no entry names a customer (an erasure's entry holds its receipt id only)",
    "erased_ids": "the erasure tombstone: sha256 digests of erased ids, kept so their events "
    "are never stored again; holds no id",
}


def holding(name: str) -> Holding:
    """The registry entry of a table, by name."""
    for entry in HOLDINGS:
        if entry.name == name:
            return entry
    raise KeyError(name)


def link_columns(table: sa.Table) -> set[str]:
    """The columns of a table whose names say they link to a customer."""
    return {column.name for column in table.columns if column.name in LINK_COLUMNS}


def unregistered(tables: Iterable[sa.Table]) -> list[str]:
    """Problems with the registry against these tables: each a sentence naming the table."""
    problems = []
    known = {entry.name: entry for entry in HOLDINGS}
    for table in tables:
        linking = link_columns(table)
        entry = known.get(table.name)
        if entry is None:
            if linking and table.name not in EXCLUDED:
                problems.append(
                    f"{table.name} has {', '.join(sorted(linking))}: add it to HOLDINGS (how to "
                    "find, export and erase its rows) or to EXCLUDED with the reason"
                )
            continue
        missing = linking - set(entry.links)
        if missing and entry.erase != "custom":
            problems.append(
                f"{table.name}.{', '.join(sorted(missing))} link(s) to a customer but the "
                "registry does not read them: add them to its links"
            )
        for column, kind in entry.links.items():
            if column not in table.c:
                problems.append(f"{table.name} has no column {column} (registry link)")
            if kind not in LINK_KINDS:
                problems.append(f"{table.name}.{column}: unknown link kind {kind!r}")
        if entry.erase not in ERASE_MODES:
            problems.append(f"{table.name}: unknown erase mode {entry.erase!r}")
        for column in entry.unlink:
            if column not in table.c or not table.c[column].nullable:
                problems.append(f"{table.name}.{column} cannot be set to NULL on erasure")
    return problems


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def quoted(value: str, levels: int = 3) -> list[str]:
    """How an id appears in JSON text: as a string, and inside a JSON-encoded string once and
    twice (a stream entry's events, and its rejections' raw payloads, are encoded strings)."""
    forms = [json.dumps(value, ensure_ascii=False)]
    while len(forms) < levels:
        forms.append(json.dumps(forms[-1], ensure_ascii=False)[1:-1])
    return forms


def where(entry: Holding, person: Person) -> sa.ColumnElement | None:
    """The condition selecting the person's rows of a table; None when nothing can match."""
    table = entry.table
    branches = []
    for column, kind in entry.links.items():
        values = [v for v in person.values(kind) if v]
        if not values:
            continue
        if kind == "text":
            branches.extend(
                table.c[column].like(f"%{_escape_like(form)}%", escape="\\")
                for v in values
                for form in quoted(v)
            )
        else:
            branches.append(table.c[column].in_(values))
    if not branches:
        return None
    condition = sa.or_(*branches)
    if entry.site_column is not None:
        condition = sa.and_(table.c[entry.site_column] == person.site_id, condition)
    return condition


def _indexed(table: sa.Table, lead: tuple[str | None, str]) -> bool:
    """True when the table's primary key or an index starts with the columns ``lead``."""
    keys = [list(table.primary_key.columns)] + [list(i.columns) for i in table.indexes]
    return any([c.name for c in key[:2]] == list(lead) for key in keys)


def _holds_user(conn: sa.Connection, site_id: int, user_id: str) -> bool:
    """True when any table of :data:`HOLDINGS` has a row naming ``user_id`` directly: a
    customer the shop never sent (no customer row, identity or event) may still have portal
    rows (consent records, preferences, inquiries) that export and erasure must reach."""
    for entry in HOLDINGS:
        columns = [
            name
            for name, kind in entry.links.items()
            if kind == "user" and _indexed(entry.table, (entry.site_column, name))
        ]  # an unindexed column (sessions') holds nobody the tables above do not name
        if not columns:
            continue
        table = entry.table
        found = conn.execute(
            sa.select(sa.literal(1))
            .where(
                table.c[entry.site_column] == site_id,
                sa.or_(*(table.c[name] == user_id for name in columns)),
            )
            .limit(1)
        ).first()
        if found is not None:
            return True
    return False


def find_person(conn: sa.Connection, site_id: int, user_id: str) -> Person | None:
    """The customer ``user_id`` of a site with every id leading to their rows, or None when
    the site has no row naming that user id (no customer, identity or event)."""
    if not user_id or "\x00" in user_id:  # no stored id holds one, and PostgreSQL text cannot
        return None
    customers, identities, events = t.customers, t.identities, t.events
    row = conn.execute(
        sa.select(customers.c.traits, customers.c.unverified_traits).where(
            customers.c.site_id == site_id, customers.c.user_id == user_id
        )
    ).first()
    anonymous = tuple(
        conn.execute(
            sa.select(identities.c.anonymous_id)
            .where(identities.c.site_id == site_id, identities.c.user_id == user_id)
            .order_by(identities.c.anonymous_id)
        ).scalars()
    )
    # A browser's unverified claim to be them, sent without an anonymous id, was stored as the
    # visitor "unverified:<user id>" (tracking.identity.distrust): theirs too.
    claimed = (UNVERIFIED_PREFIX + user_id)[:MAX_ID_LENGTH]
    if (
        claimed not in anonymous
        and conn.execute(
            sa.select(events.c.id)
            .where(events.c.site_id == site_id, events.c.anonymous_id == claimed)
            .limit(1)
        ).first()
    ):
        anonymous = (*anonymous, claimed)
    if row is None and not anonymous and not _holds_user(conn, site_id, user_id):
        return None
    emails: set[str] = set()
    if row is not None:
        for traits in (row.traits, row.unverified_traits):
            if isinstance(traits, dict) and isinstance(traits.get("email"), str):
                emails.add(traits["email"])
    lookup = t.customer_lookup
    emails.update(
        conn.execute(
            sa.select(lookup.c.value).where(
                lookup.c.site_id == site_id, lookup.c.user_id == user_id, lookup.c.kind == "email"
            )
        ).scalars()
    )
    person = Person(site_id, user_id, anonymous, tuple(sorted(emails)))
    sessions = t.sessions
    session_ids = set()
    for condition in (where(holding("sessions"), person),):
        session_ids.update(
            conn.execute(sa.select(sessions.c.session_id).where(condition)).scalars()
        )
    orders = t.orders
    order_ids = set(
        conn.execute(sa.select(orders.c.order_id).where(where(holding("orders"), person))).scalars()
    )
    return Person(
        site_id,
        user_id,
        anonymous,
        person.emails,
        tuple(sorted(session_ids)),
        tuple(sorted(order_ids)),
    )
