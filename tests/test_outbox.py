"""The email outbox: queued in the caller's transaction, in English and Korean, erasable."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from accounts.messaging_schema import email_outbox
from accounts.outbox import (
    TEMPLATES,
    InvalidEmail,
    enqueue_email,
    erase_recipient,
    normalise_locale,
    render,
)
from tests.conftest import count

CODE_CONTEXT = {"site_name": "Jazz Records", "code": "482913", "minutes": 10}
CONTEXTS = {
    "sign_in_code": CODE_CONTEXT,
    "email_change_code": CODE_CONTEXT,
    "delete_account_code": CODE_CONTEXT,
    "inquiry_reply": {
        "site_name": "Jazz Records",
        "subject": "Where is my order?",
        "reply_text": 'It left the warehouse today.\nTracking: <ZX-1> & "soon"',
        "inquiry_url": "https://ecrm.example/account/inquiries/7",
    },
}
# A word of each template's body in each language, so a swapped or missing file fails.
KOREAN = {
    "sign_in_code": "로그인",
    "email_change_code": "이메일",
    "delete_account_code": "삭제",
    "inquiry_reply": "답변",
}


def _queue(db, **kwargs) -> int:
    args = {
        "site_id": 1,
        "to": "ada@example.test",
        "template": "sign_in_code",
        "locale": "en",
        "context": CODE_CONTEXT,
    }
    args.update(kwargs)
    with db.begin() as conn:
        return enqueue_email(conn, **args)


def _row(db, outbox_id: int) -> dict:
    with db.connect() as conn:
        return dict(
            conn.execute(sa.select(email_outbox).where(email_outbox.c.id == outbox_id))
            .mappings()
            .one()
        )


def test_the_contract_names_four_templates():
    assert set(TEMPLATES) == {
        "sign_in_code",
        "email_change_code",
        "delete_account_code",
        "inquiry_reply",
    }


@pytest.mark.parametrize("template", sorted(CONTEXTS))
def test_every_template_renders_in_english_and_korean(template):
    context = CONTEXTS[template]
    en_subject, en_body = render(template, "en", context)
    ko_subject, ko_body = render(template, "ko", context)
    assert "Jazz Records" in en_subject and "Jazz Records" in ko_subject
    assert en_subject != ko_subject and en_body != ko_body
    assert KOREAN[template] in ko_body and KOREAN[template] not in en_body
    for body in (en_body, ko_body):
        assert not body.startswith(("Subject", "\n"))
        if "code" in context:
            assert "    482913\n" in body and "10" in body
        else:
            assert context["reply_text"] in body and context["inquiry_url"] in body
            assert "Where is my order?" in body


@pytest.mark.parametrize(
    ("given", "expected"),
    [("ko", "ko"), ("ko-KR", "ko"), ("KO_kr", "ko"), ("en-GB", "en"), ("fr", "en"), ("", "en")],
)
def test_locales_fall_back_to_english(given, expected):
    assert normalise_locale(given) == expected


def test_a_subject_stays_one_line_whatever_the_site_name_holds():
    context = {**CODE_CONTEXT, "site_name": "Shop\r\nBcc: victim@example.test"}
    subject, _ = render("sign_in_code", "en", context)
    assert "\n" not in subject and "\r" not in subject
    assert subject == "Your sign-in code for Shop Bcc: victim@example.test"


def test_a_queued_email_is_stored_only_when_the_caller_commits(db, site):
    with db.connect() as conn:
        with conn.begin() as tx:
            enqueue_email(
                conn,
                site_id=site.site_id,
                to="ada@example.test",
                template="sign_in_code",
                locale="en",
                context=CODE_CONTEXT,
            )
            tx.rollback()
    assert count(db, email_outbox) == 0
    outbox_id = _queue(db, site_id=site.site_id, to=" Ada@Example.TEST ", user_id="cust-1")
    row = _row(db, outbox_id)
    assert row["status"] == "pending" and row["attempts"] == 0
    assert row["to_address"] == "ada@example.test" and row["user_id"] == "cust-1"
    assert row["subject"] == "Your sign-in code for Jazz Records"
    assert row["from_name"] == "Jazz Records" and row["locale"] == "en"
    assert "482913" in row["body_text"] and row["sent_at"] is None
    korean = _row(db, _queue(db, site_id=site.site_id, locale="ko-KR"))
    assert korean["locale"] == "ko" and korean["subject"] == "Jazz Records 로그인 인증 코드"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"to": "not an address"}, "to"),
        ({"to": "ada@example"}, "to"),
        ({"to": "ada@example.test\r\nBcc: eve@example.test"}, "to"),
        ({"to": "Ada <ada@example.test>"}, "to"),
        ({"to": "a" * 250 + "@example.test"}, "to"),
        ({"to": None}, "to"),
        ({"template": "newsletter"}, "template"),
        ({"context": {"site_name": "Jazz Records", "code": "1"}}, "context"),
        ({"context": {"site_name": "", "code": "1", "minutes": 10}}, "context"),
        ({"template": "inquiry_reply"}, "context"),
        ({"context": "not a dict"}, "context"),
        ({"user_id": "x" * 256}, "user_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": 42}, "user_id"),
    ],
)
def test_what_cannot_be_sent_is_refused_naming_the_argument(db, change, field):
    with pytest.raises(InvalidEmail) as raised:
        _queue(db, **change)
    assert raised.value.field == field
    assert count(db, email_outbox) == 0


def test_erasure_deletes_a_persons_messages_and_their_files_and_nothing_else(db, site, tmp_path):
    mine = [
        _queue(db, site_id=site.site_id, user_id="cust-1", to="ada@example.test"),
        _queue(db, site_id=site.site_id, to="ADA@example.test"),  # before she had an account
        _queue(db, site_id=site.site_id, user_id="cust-1", to="new-ada@example.test"),
    ]
    others = [
        _queue(db, site_id=site.site_id, user_id="cust-2", to="bob@example.test"),
        _queue(db, site_id=site.site_id + 1, user_id="cust-1", to="ada@example.test"),
    ]
    files = {}
    with db.begin() as conn:
        for outbox_id in mine + others:
            path = tmp_path / f"{outbox_id}.eml"
            path.write_text("To: someone\n\nhello\n")
            files[outbox_id] = path
            conn.execute(
                email_outbox.update()
                .where(email_outbox.c.id == outbox_id)
                .values(status="sent", eml_path=str(path))
            )
    with db.begin() as conn:
        erased = erase_recipient(conn, site.site_id, "cust-1", ["Ada@Example.test"])
    assert erased == 3
    with db.connect() as conn:
        left = set(conn.execute(sa.select(email_outbox.c.id)).scalars())
    assert left == set(others)
    assert [files[i].exists() for i in mine] == [False, False, False]
    assert all(files[i].exists() for i in others)
    with db.begin() as conn:
        assert erase_recipient(conn, site.site_id, "cust-1", ["ada@example.test"]) == 0
        assert erase_recipient(conn, site.site_id, None, []) == 0
