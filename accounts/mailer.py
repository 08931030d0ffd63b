"""The sender of the email outbox: claims due messages and sends them, or writes ``.eml`` files.

With an SMTP relay (``ECRM_SMTP_URL``: ``smtp://host:port``, upgraded with STARTTLS when the
relay offers it, or ``smtps://user:password@host:port`` for TLS from the start) each message is
sent with the standard library's :mod:`smtplib`. Without one, each is written as an RFC 5322
file ``<outbox id>.eml`` under the mail folder (``var/mail/``), where any mail client opens it.

Failures are retried with exponential backoff (:func:`accounts.claims.backoff`); a relay's
permanent refusal (a 5xx answer to the recipient or the message) or the last attempt marks the
message ``failed`` with its error kept. Several senders may run at once (:mod:`accounts.claims`).
Logs name outbox ids, never addresses or contents.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa

from accounts.claims import backoff, claim_due, settle
from accounts.messaging_schema import email_outbox
from accounts.outbox import erase_recipient

__all__ = ["MailSettings", "Mailer", "build_message", "describe_smtp", "erase_recipient"]

log = logging.getLogger("ecrm.accounts.mailer")

MAX_RETRY_SECONDS = 3600.0
LEASE_SECONDS = 300.0  # longer than any one send (SMTP timeout x its few round trips)
BATCH = 20
PRUNE_SECONDS = 3600.0


@dataclass(frozen=True)
class MailSettings:
    """Where and how the mailer sends (from the app's configuration)."""

    mail_dir: Path
    mail_from: str
    smtp_url: str | None = None
    smtp_timeout: float = 30.0
    max_attempts: int = 8
    retry_seconds: float = 30.0
    keep_days: float = 30.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MailSettings:
        """The settings named ``SMTP_URL``, ``MAIL_DIR``... in the app's configuration."""
        return cls(
            mail_dir=Path(config["MAIL_DIR"]),
            mail_from=config["MAIL_FROM"],
            smtp_url=config["SMTP_URL"] or None,
            smtp_timeout=config["SMTP_TIMEOUT_SECONDS"],
            max_attempts=config["MAIL_MAX_ATTEMPTS"],
            retry_seconds=config["MAIL_RETRY_SECONDS"],
            keep_days=config["MESSAGES_KEEP_DAYS"],
        )


def describe_smtp(url: str | None, mail_dir: Path | str) -> str:
    """Where mail goes, for people (the password left out)."""
    if not url:
        return f".eml files in {mail_dir} (ECRM_SMTP_URL is unset)"
    parts = urlsplit(url)
    port = parts.port or (465 if parts.scheme == "smtps" else 25)
    who = f"{unquote(parts.username)}@" if parts.username else ""
    return f"{parts.scheme}://{who}{parts.hostname}:{port}"


def build_message(row: dict[str, Any], mail_from: str) -> EmailMessage:
    """The RFC 5322 message of an outbox row (plain text, UTF-8)."""
    message = EmailMessage(policy=SMTP_POLICY)
    local, _, domain = mail_from.rpartition("@")
    message["From"] = Address(display_name=row["from_name"], username=local, domain=domain)
    message["To"] = row["to_address"]
    message["Subject"] = row["subject"]
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(idstring=f"outbox.{row['id']}", domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    message.set_content(row["body_text"])  # (replaces any Content-* header set before it)
    message["Content-Language"] = row["locale"]
    return message


def _permanent(error: Exception) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return False  # the relay's settings are wrong, not the message: retry after a fix
    return isinstance(error, smtplib.SMTPResponseException) and 500 <= error.smtp_code < 600


def _describe(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:500]


class SmtpRelay:
    """One connection to the relay of ``ECRM_SMTP_URL`` (opened on first use)."""

    def __init__(self, url: str, timeout: float):
        self.parts, self.timeout = urlsplit(url), timeout
        self.conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        parts = self.parts
        context = ssl.create_default_context()
        if parts.scheme == "smtps":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                parts.hostname, parts.port or 465, timeout=self.timeout, context=context
            )
        else:
            conn = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=self.timeout)
        try:
            if parts.scheme == "smtp":
                conn.ehlo()
                if conn.has_extn("starttls"):
                    conn.starttls(context=context)
                    conn.ehlo()
            if parts.username:
                conn.login(unquote(parts.username), unquote(parts.password or ""))
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, message: EmailMessage) -> None:
        """Send one message, reconnecting once if the kept connection has gone."""
        if self.conn is None:
            self.conn = self._connect()
        try:
            self.conn.send_message(message)
        except smtplib.SMTPServerDisconnected:
            self.conn = self._connect()
            self.conn.send_message(message)

    def close(self) -> None:
        """Say QUIT (or just drop a connection that broke)."""
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                self.conn.close()
            self.conn = None


def write_eml(mail_dir: Path, outbox_id: int, message: EmailMessage) -> Path:
    """Write the message as ``<id>.eml`` (CRLF line ends, as on the wire), atomically."""
    mail_dir.mkdir(parents=True, exist_ok=True)
    path = mail_dir / f"{outbox_id}.eml"
    partial = mail_dir / f".{outbox_id}.eml.partial"
    partial.write_bytes(message.as_bytes(policy=SMTP_POLICY))
    os.replace(partial, path)
    return path


class Mailer:
    """Sends due outbox messages; :meth:`run_once` is one round, :meth:`run` loops."""

    def __init__(self, engine: sa.Engine, settings: MailSettings):
        self.engine, self.settings = engine, settings

    def run_once(self, limit: int = BATCH) -> int:
        """Claim and send up to ``limit`` due messages; return how many were claimed."""
        rows = claim_due(self.engine, email_outbox, lease_seconds=LEASE_SECONDS, limit=limit)
        if not rows:
            return 0
        relay = SmtpRelay(self.settings.smtp_url, self.settings.smtp_timeout)
        try:
            for row in rows:
                self._send(row, relay if self.settings.smtp_url else None)
        finally:
            relay.close()
        return len(rows)

    def _send(self, row: dict[str, Any], relay: SmtpRelay | None) -> None:
        message = build_message(row, self.settings.mail_from)
        path = None
        try:
            if relay is None:
                path = write_eml(self.settings.mail_dir, row["id"], message)
            else:
                relay.send(message)
        except (smtplib.SMTPException, OSError) as error:
            if relay is not None:
                relay.close()  # a fresh connection for the next message, whatever state this left
            self._failed(row, error)
            return
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            # The body has left (a one-time code, a reply): the row keeps only its subject.
            values = {"status": "sent", "sent_at": now, "last_error": None, "body_text": ""}
            if path is not None:
                values["eml_path"] = str(path)
            if settle(conn, email_outbox, row, **values):
                log.info("email %d sent (attempt %d)", row["id"], row["attempts"])
                return
            gone = conn.execute(
                sa.select(email_outbox.c.id).where(email_outbox.c.id == row["id"])
            ).first()
        if gone is None and path is not None:
            # Erased while we wrote it (accounts.outbox.erase_recipient): leave nothing behind.
            path.unlink(missing_ok=True)

    def _failed(self, row: dict[str, Any], error: Exception) -> None:
        settings = self.settings
        final = _permanent(error) or row["attempts"] >= settings.max_attempts
        values: dict[str, Any] = {"last_error": _describe(error)}
        if final:
            values["status"] = "failed"
        else:
            wait = backoff(row["attempts"], settings.retry_seconds, MAX_RETRY_SECONDS)
            values.update(status="pending", next_attempt_at=datetime.now(UTC) + wait)
        with self.engine.begin() as conn:
            settle(conn, email_outbox, row, **values)
        log.warning(
            "email %d attempt %d failed (%s)%s",
            row["id"],
            row["attempts"],
            type(error).__name__,
            "; giving up" if final else "; will retry",
        )

    def prune(self, now: datetime | None = None) -> int:
        """Delete sent and failed messages queued over ``keep_days`` ago, and their files."""
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.settings.keep_days)
        with self.engine.begin() as conn:
            rows = conn.execute(
                email_outbox.delete()
                .where(
                    email_outbox.c.status.in_(("sent", "failed")),
                    email_outbox.c.created_at < cutoff,
                )
                .returning(email_outbox.c.eml_path)
            ).all()
        for (path,) in rows:
            if path:
                Path(path).unlink(missing_ok=True)
        return len(rows)

    def run(self, stop: threading.Event, poll_seconds: float) -> None:
        """Until ``stop``: send what is due, then wait ``poll_seconds`` when nothing was.

        Old messages are pruned at start and then every hour.
        """
        pruned_at = None
        while not stop.is_set():
            try:
                if pruned_at is None or time.monotonic() - pruned_at > PRUNE_SECONDS:
                    pruned_at = time.monotonic()
                    log.info("pruned %d old outbox messages", self.prune())
                busy = self.run_once()
            except sa.exc.SQLAlchemyError:
                log.exception("the mailer could not read the outbox; trying again")
                busy = 0
            if not busy:
                stop.wait(poll_seconds)
