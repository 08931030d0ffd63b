"""The email outbox: messages queued inside the caller's transaction, sent later by the mailer.

:func:`enqueue_email` renders one of :data:`TEMPLATES` (English or Korean, files under
``accounts/email_templates/<locale>/<template>.txt``: a ``Subject:`` line, a blank line, the
plain-text body) and stores it as a ``pending`` row of ``email_outbox``. Nothing is sent here:
the row appears to the sender process (:mod:`accounts.mailer`) only when the caller commits, so a
rolled-back sign-in sends no code. :func:`erase_recipient` removes a person's messages, sent or
not, and the ``.eml`` files the mailer wrote for them.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
import sqlalchemy as sa

from accounts.messaging_schema import email_outbox
from tracking.errors import FieldError

log = logging.getLogger("ecrm.accounts.outbox")

TEMPLATE_DIR = Path(__file__).resolve().parent / "email_templates"
LOCALES = ("en", "ko")
DEFAULT_LOCALE = "en"
# Template name -> the context keys it needs (more keys are allowed and ignored).
TEMPLATES: dict[str, tuple[str, ...]] = {
    "sign_in_code": ("site_name", "code", "minutes"),
    "email_change_code": ("site_name", "code", "minutes"),
    "delete_account_code": ("site_name", "code", "minutes"),
    "inquiry_reply": ("site_name", "subject", "reply_text", "inquiry_url"),
}
MAX_ADDRESS = 254
MAX_SUBJECT = 300
MAX_BODY = 100_000
# An address we can put in a To: header as it is: printable ASCII without spaces or the
# characters that would need quoting, one @, a dotted domain of letters, digits and hyphens.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(rf"^{_LOCAL}@{_LABEL}(?:\.{_LABEL})+$")

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    # Plain text (a text/plain part): nothing to escape. An HTML part would need autoescaping.
    autoescape=False,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


@functools.cache
def _parts(name: str) -> tuple[jinja2.Template, jinja2.Template]:
    """The template file's ``Subject:`` line and body, compiled apart."""
    source, _, _ = _templates.loader.get_source(_templates, name)
    first, _, body = source.partition("\n")
    if not first.startswith("Subject: "):
        raise RuntimeError(f"email template {name} does not start with a Subject: line")
    return (
        _templates.from_string(first.removeprefix("Subject: ")),
        _templates.from_string(body.lstrip("\n")),
    )


class InvalidEmail(FieldError):
    """An email that cannot be queued; ``field`` names the argument at fault."""


def normalise_locale(locale: str | None) -> str:
    """``ko``, ``ko-KR``, ``ko_KR`` -> ``ko``; anything we have no templates for -> ``en``."""
    primary = re.split(r"[-_]", (locale or "").strip().lower(), maxsplit=1)[0]
    return primary if primary in LOCALES else DEFAULT_LOCALE


def check_address(to: Any) -> str:
    """The address lower-cased, or :class:`InvalidEmail` naming ``to``."""
    if not isinstance(to, str):
        raise InvalidEmail("to", "must be an email address")
    address = to.strip().lower()
    if len(address) > MAX_ADDRESS:
        raise InvalidEmail("to", f"longer than {MAX_ADDRESS} characters")
    if not ADDRESS.match(address):
        raise InvalidEmail("to", "is not an email address like name@example.com")
    return address


def render(template: str, locale: str, context: dict) -> tuple[str, str]:
    """(subject, plain-text body) of ``template`` in ``locale`` (normalised) with ``context``."""
    needed = TEMPLATES.get(template)
    if needed is None:
        raise InvalidEmail("template", f"unknown; one of {', '.join(TEMPLATES)}")
    if not isinstance(context, dict):
        raise InvalidEmail("context", "must be a dict")
    missing = [key for key in needed if context.get(key) in (None, "")]
    if missing:
        raise InvalidEmail("context", f"{template} needs {', '.join(missing)}")
    subject_template, body_template = _parts(f"{normalise_locale(locale)}/{template}.txt")
    # One line, whatever a site name or an inquiry's subject holds: no header injection.
    subject = " ".join(subject_template.render(context).split())
    body = body_template.render(context)
    return subject[:MAX_SUBJECT], body


def enqueue_email(
    conn: sa.Connection,
    *,
    site_id: int,
    to: str,
    template: str,
    locale: str,
    context: dict,
    user_id: str | None = None,
) -> int:
    """Queue one email inside the caller's transaction; return its outbox id.

    Raises :class:`InvalidEmail` (``field`` is ``to``, ``template``, ``context`` or ``user_id``)
    for what cannot be sent; the row is written only if the caller commits.
    """
    address = check_address(to)
    if user_id is not None and (not isinstance(user_id, str) or not 0 < len(user_id) <= 255):
        raise InvalidEmail("user_id", "must be a customer id of 1 to 255 characters")
    subject, body = render(template, locale, context)
    if len(body) > MAX_BODY:
        raise InvalidEmail("context", f"the message would be longer than {MAX_BODY} characters")
    from_name = " ".join(str(context["site_name"]).split())[:200]
    now = datetime.now(UTC)
    inserted = conn.execute(
        email_outbox.insert().values(
            site_id=site_id,
            user_id=user_id,
            to_address=address,
            template=template,
            locale=normalise_locale(locale),
            from_name=from_name,
            subject=subject,
            body_text=body,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    outbox_id = int(inserted.inserted_primary_key[0])
    log.info("queued email %d (%s) for site %d", outbox_id, template, site_id)
    return outbox_id


def erase_recipient(
    conn: sa.Connection, site_id: int, user_id: str | None, emails: Iterable[str]
) -> int:
    """Delete the site's outbox rows for this customer or these addresses, sent or not.

    Also deletes the ``.eml`` files the mailer wrote for them. Returns the rows deleted.
    A message already handed to an SMTP relay cannot be called back; its row goes all the same.
    """
    addresses = sorted({e.strip().lower() for e in emails if isinstance(e, str) and e.strip()})
    who = []
    if user_id is not None:
        who.append(email_outbox.c.user_id == user_id)
    if addresses:
        who.append(email_outbox.c.to_address.in_(addresses))
    if not who:
        return 0
    rows = conn.execute(
        email_outbox.delete()
        .where(email_outbox.c.site_id == site_id, sa.or_(*who))
        .returning(email_outbox.c.id, email_outbox.c.eml_path)
    ).all()
    for _, path in rows:
        if path:
            Path(path).unlink(missing_ok=True)
    log.info("erased %d outbox messages of site %d", len(rows), site_id)
    return len(rows)
