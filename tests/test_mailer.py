"""The mailer: .eml files without a relay, a real SMTP server (aiosmtpd) with one, retries."""

from __future__ import annotations

import email
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from accounts.claims import claim_due
from accounts.mailer import Mailer, MailSettings, describe_smtp
from accounts.messaging_schema import email_outbox
from accounts.outbox import enqueue_email, erase_recipient
from tests.conftest import count
from webapp.config import ConfigError, load_config

CONTEXT = {"site_name": "Jazz Records", "code": "482913", "minutes": 10}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping what it was given; refuses recipients at refused.example."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.logins.append(session.authenticated and session.auth_data)
        return "250 Message accepted for delivery"


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"shop",
        b"p@ss word",
    )
    if not ok:  # handled=False: aiosmtpd answers 535 itself
        return AuthResult(success=False, handled=False)
    return AuthResult(success=True, auth_data=auth_data.login)


@pytest.fixture
def smtp_server():
    """A real SMTP server on 127.0.0.1 that takes one login (shop / "p@ss word")."""
    inbox = Inbox()
    port = _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        # Not required (aiosmtpd warns about AUTH without TLS), but checked: a client that logs
        # in with a wrong password is refused, and handle_DATA records who was signed in.
        auth_required=False,
        auth_require_tls=False,
    )
    controller.start()
    inbox.url = f"smtp://shop:p%40ss%20word@127.0.0.1:{port}"
    yield inbox
    controller.stop()


def _settings(tmp_path: Path, **changes) -> MailSettings:
    values = {"mail_dir": tmp_path / "mail", "mail_from": "no-reply@shop.example"}
    values.update(changes)
    return MailSettings(**values)


def _queue(db, site_id: int, to: str = "ada@example.test", **kwargs) -> int:
    args = {"template": "sign_in_code", "locale": "en", "context": CONTEXT}
    args.update(kwargs)
    with db.begin() as conn:
        return enqueue_email(conn, site_id=site_id, to=to, **args)


def _row(db, outbox_id: int) -> dict:
    with db.connect() as conn:
        query = sa.select(email_outbox).where(email_outbox.c.id == outbox_id)
        return dict(conn.execute(query).mappings().one())


def _make_due(db) -> None:
    with db.begin() as conn:
        conn.execute(email_outbox.update().values(next_attempt_at=datetime.now(UTC)))


def test_without_a_relay_each_message_becomes_an_eml_file(db, site, tmp_path):
    outbox_id = _queue(db, site.site_id, user_id="cust-1")
    korean = _queue(db, site.site_id, to="min@example.test", locale="ko")
    mailer = Mailer(db, _settings(tmp_path))
    assert mailer.run_once() == 2
    assert mailer.run_once() == 0  # nothing is sent twice
    row = _row(db, outbox_id)
    assert row["status"] == "sent" and row["attempts"] == 1 and row["sent_at"] is not None
    assert row["body_text"] == "" and row["subject"]  # the code has left; the subject stays
    path = Path(row["eml_path"])
    assert path == tmp_path / "mail" / f"{outbox_id}.eml"
    raw = path.read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # RFC 5322 line ends
    message = email.message_from_bytes(raw, policy=default_policy)
    assert message["To"] == "ada@example.test"
    assert message["From"] == "Jazz Records <no-reply@shop.example>"
    assert message["Subject"] == "Your sign-in code for Jazz Records"
    assert f"outbox.{outbox_id}" in message["Message-ID"] and message["Date"]
    assert "482913" in message.get_content()
    ko_path = Path(_row(db, korean)["eml_path"])
    ko = email.message_from_bytes(ko_path.read_bytes(), policy=default_policy)
    assert ko["Subject"] == "Jazz Records 로그인 인증 코드"
    assert "인증 코드" in ko.get_content() and ko["Content-Language"] == "ko"
    # Erasure removes the file the mailer wrote.
    with db.begin() as conn:
        assert erase_recipient(conn, site.site_id, "cust-1", []) == 1
    assert not path.exists()
    assert [p.name for p in (tmp_path / "mail").iterdir()] == [f"{korean}.eml"]


def test_with_a_relay_messages_go_through_smtp_with_a_login(db, site, tmp_path, smtp_server):
    ids = [_queue(db, site.site_id, to=f"c{n}@example.test") for n in range(3)]
    ids.append(
        _queue(
            db,
            site.site_id,
            template="inquiry_reply",
            locale="ko",
            context={
                "site_name": "재즈 레코드",
                "subject": "배송 문의",
                "reply_text": "오늘 출고되었습니다.",
                "inquiry_url": "https://ecrm.example/account/inquiries/7",
            },
        )
    )
    mailer = Mailer(db, _settings(tmp_path, smtp_url=smtp_server.url))
    assert mailer.run_once() == 4
    assert [_row(db, i)["status"] for i in ids] == ["sent"] * 4
    assert [_row(db, i)["eml_path"] for i in ids] == [None] * 4
    assert not (tmp_path / "mail").exists()
    assert [rcpts for _, rcpts in smtp_server.envelopes] == [
        ["c0@example.test"],
        ["c1@example.test"],
        ["c2@example.test"],
        ["ada@example.test"],
    ]
    assert {sender for sender, _ in smtp_server.envelopes} == {"no-reply@shop.example"}
    assert smtp_server.logins == [b"shop"] * 4
    reply = smtp_server.messages[-1]
    assert reply["Subject"] == "[재즈 레코드] 문의 답변: 배송 문의"
    assert reply["From"].addresses[0].display_name == "재즈 레코드"
    assert "오늘 출고되었습니다." in reply.get_content()


def test_a_wrong_password_is_retried_with_backoff_then_given_up(db, site, tmp_path, smtp_server):
    outbox_id = _queue(db, site.site_id)
    wrong = smtp_server.url.replace("p%40ss", "nope")
    mailer = Mailer(db, _settings(tmp_path, smtp_url=wrong, max_attempts=3, retry_seconds=60))
    waits = []
    for attempt in (1, 2, 3):
        before = datetime.now(UTC)
        assert mailer.run_once() == 1
        row = _row(db, outbox_id)
        assert row["attempts"] == attempt and "SMTPAuthenticationError" in row["last_error"]
        if attempt < 3:
            assert row["status"] == "pending"
            next_at = row["next_attempt_at"].replace(tzinfo=UTC)
            waits.append(round((next_at - before).total_seconds() / 60))
            assert mailer.run_once() == 0  # not due yet
            _make_due(db)
    assert waits == [1, 2]  # 60 s, then doubled
    assert _row(db, outbox_id)["status"] == "failed"
    _make_due(db)
    assert mailer.run_once() == 0  # given up: never claimed again
    assert smtp_server.messages == []


def test_an_unreachable_relay_keeps_the_message_for_later(db, site, tmp_path):
    outbox_id = _queue(db, site.site_id)
    closed = f"smtp://127.0.0.1:{_free_port()}"  # nothing listens there
    assert Mailer(db, _settings(tmp_path, smtp_url=closed)).run_once() == 1
    row = _row(db, outbox_id)
    assert row["status"] == "pending" and "ConnectionRefusedError" in row["last_error"]


def test_a_recipient_the_relay_refuses_fails_at_once_and_the_others_go(
    db, site, tmp_path, smtp_server
):
    refused = _queue(db, site.site_id, to="gone@refused.example")
    fine = _queue(db, site.site_id, to="ada@example.test")
    assert Mailer(db, _settings(tmp_path, smtp_url=smtp_server.url)).run_once() == 2
    row = _row(db, refused)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert "550" in row["last_error"]
    assert _row(db, fine)["status"] == "sent"
    assert [rcpts for _, rcpts in smtp_server.envelopes] == [["ada@example.test"]]


def test_a_message_left_by_a_sender_that_died_is_sent_once_its_lease_runs_out(db, site, tmp_path):
    outbox_id = _queue(db, site.site_id)
    with db.begin() as conn:  # what a sender that died mid-send leaves behind
        conn.execute(
            email_outbox.update().values(
                status="sending", attempts=1, claimed_until=datetime.now(UTC) + timedelta(hours=1)
            )
        )
    mailer = Mailer(db, _settings(tmp_path))
    assert mailer.run_once() == 0  # its lease still runs
    with db.begin() as conn:
        conn.execute(
            email_outbox.update().values(claimed_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert mailer.run_once() == 1
    row = _row(db, outbox_id)
    assert row["status"] == "sent" and row["attempts"] == 2


def test_several_senders_at_once_send_every_message_exactly_once(db, site, tmp_path, smtp_server):
    ids = [_queue(db, site.site_id, to=f"c{n}@example.test") for n in range(60)]
    settings = _settings(tmp_path, smtp_url=smtp_server.url)
    start = threading.Barrier(4)
    errors = []

    def sender():
        mailer = Mailer(db, settings)
        start.wait()
        try:
            while mailer.run_once(limit=3):
                pass
        except Exception as e:  # reported below: a thread's exception would be lost
            errors.append(e)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    message_ids = [m["Message-ID"] for m in smtp_server.messages]
    assert len(message_ids) == 60 and len(set(message_ids)) == 60
    assert {_row(db, i)["status"] for i in ids} == {"sent"}
    assert {_row(db, i)["attempts"] for i in ids} == {1}


def test_a_message_erased_while_it_was_being_written_leaves_no_file(db, site, tmp_path):
    outbox_id = _queue(db, site.site_id, user_id="cust-1")
    mailer = Mailer(db, _settings(tmp_path))
    [claimed] = claim_due(db, email_outbox, lease_seconds=60, limit=5)
    with db.begin() as conn:  # erasure runs between the claim and the send
        assert erase_recipient(conn, site.site_id, "cust-1", []) == 1
    mailer._send(claimed, None)
    assert not (tmp_path / "mail" / f"{outbox_id}.eml").exists()
    assert count(db, email_outbox) == 0


def test_old_sent_and_failed_messages_are_pruned_with_their_files(db, site, tmp_path):
    old_sent, new_sent = _queue(db, site.site_id), _queue(db, site.site_id)
    mailer = Mailer(db, _settings(tmp_path, keep_days=30))
    mailer.run_once()
    old_failed, old_pending = _queue(db, site.site_id), _queue(db, site.site_id)
    month_ago = datetime.now(UTC) - timedelta(days=31)
    with db.begin() as conn:
        conn.execute(
            email_outbox.update().where(email_outbox.c.id == old_failed).values(status="failed")
        )
        conn.execute(
            email_outbox.update()
            .where(email_outbox.c.id.in_([old_sent, old_failed, old_pending]))
            .values(created_at=month_ago)
        )
    old_file = Path(_row(db, old_sent)["eml_path"])
    assert mailer.prune() == 2
    with db.connect() as conn:
        left = set(conn.execute(sa.select(email_outbox.c.id)).scalars())
    assert left == {new_sent, old_pending}  # a message still to send is never pruned
    assert not old_file.exists() and Path(_row(db, new_sent)["eml_path"]).exists()


def test_the_mailer_command_sends_what_is_due_and_says_where_mail_goes(app, runner, db, site):
    outbox_id = _queue(db, site.site_id)
    result = runner.invoke(args=["mailer", "--once"])
    assert result.exit_code == 0, result.output
    assert f".eml files in {app.config['MAIL_DIR']}" in result.output
    assert "1 email" in result.output
    assert Path(_row(db, outbox_id)["eml_path"]).parent == Path(app.config["MAIL_DIR"])


def test_where_mail_goes_is_described_without_the_password():
    url = "smtps://shop:secret@mail.example:2465"
    assert describe_smtp(url, "var/mail") == "smtps://shop@mail.example:2465"
    assert describe_smtp("smtp://mail.example", "var/mail") == "smtp://mail.example:25"
    assert describe_smtp(None, "var/mail") == ".eml files in var/mail (ECRM_SMTP_URL is unset)"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("SMTP_URL", "http://mail.example"),
        ("SMTP_URL", "smtp://"),
        ("SMTP_URL", "smtp://mail.example:port"),
        ("MAIL_FROM", "Shop <no-reply@shop.example>"),
        ("MAIL_FROM", "nobody"),
        ("MAIL_MAX_ATTEMPTS", "0"),
        ("WEBHOOK_TIMEOUT_SECONDS", "0"),
        ("MESSAGES_KEEP_DAYS", "-1"),
    ],
)
def test_bad_mail_settings_stop_the_start_with_what_to_set(setting, value):
    with pytest.raises(ConfigError, match=f"ECRM_{setting}"):
        load_config({"TESTING": True}, environ={f"ECRM_{setting}": value})
