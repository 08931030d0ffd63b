"""The portal's one way of emailing a one-time code: through the outbox (accounts.outbox).

The message is queued inside the caller's transaction, so a code is sent only when the code it
carries is stored; the mailer process sends it (or writes it under var/mail/ without SMTP).
"""

from __future__ import annotations

import sqlalchemy as sa

from accounts.codes import CODE_LIFETIME
from accounts.outbox import InvalidEmail, check_address, enqueue_email
from tracking.schema import sites
from webapp.portal import select_locale


def check_deliverable(email: str, problems: dict[str, str], field: str = "email") -> None:
    """A problem under ``field`` when the outbox could not send to ``email`` (checked before
    looking the address up, so known and unknown addresses get the same answer)."""
    if field in problems:
        return
    try:
        check_address(email)
    except InvalidEmail:
        problems[field] = "must be an email address like name@example.com"


def send_code(
    conn: sa.Connection, site_id: int, to: str, template: str, code: str, user_id: str
) -> int:
    """Queue the code's email (``sign_in_code`` or ``email_change_code``); its outbox id."""
    site_name = conn.execute(sa.select(sites.c.name).where(sites.c.site_id == site_id)).scalar()
    return enqueue_email(
        conn,
        site_id=site_id,
        to=to,
        template=template,
        locale=select_locale(),
        context={
            "site_name": site_name or "",
            "code": code,
            "minutes": int(CODE_LIFETIME.total_seconds() // 60),
        },
        user_id=user_id,
    )
