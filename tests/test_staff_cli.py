"""``flask users ...`` and the one-time sign-in links it prints (single use, 24 hours)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from accounts import audit
from accounts.schema import sign_in_links
from accounts.staff import find_staff
from tests.staff_helpers import PASSWORD, csrf_token
from tracking.sites import create_site

LINK = re.compile(r"http://127\.0\.0\.1:8000(/console/welcome/[\w-]+)")


@pytest.fixture
def engine(app):
    return app.extensions["ecrm"].engine


@pytest.fixture
def shops(engine):
    a, _ = create_site(engine, "Shop A", ["https://a.example"])
    b, _ = create_site(engine, "Shop B", ["https://b.example"])
    return a, b


def link_path(output: str) -> str:
    found = LINK.search(output)
    assert found, output
    return found.group(1)


def welcome(client, path, password=PASSWORD, confirm=None):
    token = csrf_token(client, path)
    return client.post(
        path,
        data={"password": password, "confirm": confirm or password, "csrf_token": token},
    )


def test_create_with_a_password_from_stdin(runner, engine, shops):
    a, b = shops
    result = runner.invoke(
        args=[
            "users",
            "create",
            "Ada@Example.test",
            "--role",
            "marketer",
            "--site",
            a.write_key,
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "created ada@example.test: marketer of Shop A" in result.output
    assert "welcome" not in result.output
    member = find_staff(engine, "ada@example.test")
    assert member.grants == {a.site_id: "marketer"} and not member.invited


def test_create_without_a_password_prints_a_link_that_signs_in_once(app, runner, shops):
    a, b = shops
    args = ["users", "create", "ada@example.test", "--role", "owner"]
    result = runner.invoke(args=[*args, "--site", a.write_key, "--site", b.write_key])
    assert result.exit_code == 0, result.output
    assert "owner of Shop A, Shop B" in result.output
    path = link_path(result.output)
    client = app.test_client()
    page = client.get(path)
    assert page.status_code == 200 and "ada@example.test" in page.get_data(as_text=True)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    short = welcome(client, path, "short")
    assert short.status_code == 422 and "at least 10 characters" in short.get_data(as_text=True)
    differ = welcome(client, path, PASSWORD, "something else entirely")
    assert differ.status_code == 422 and "differ" in differ.get_data(as_text=True)
    done = welcome(client, path)
    assert done.status_code == 303 and done.headers["Location"] == "/console/"
    assert client.get("/console/account").status_code == 200
    # Used: the link no longer works, in this browser or any other.
    assert client.get(path).status_code == 410
    assert app.test_client().get(path).status_code == 410


def test_a_link_expires_after_24_hours_and_only_the_newest_works(app, runner, engine, shops):
    a, _ = shops
    first = link_path(
        runner.invoke(
            args=["users", "create", "ada@example.test", "--role", "viewer", "--site", a.write_key]
        ).output
    )
    second = link_path(runner.invoke(args=["users", "link", "ada@example.test"]).output)
    client = app.test_client()
    assert client.get(first).status_code == 410
    assert client.get(second).status_code == 200
    with engine.begin() as conn:
        conn.execute(
            sign_in_links.update().values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert client.get(second).status_code == 410
    assert welcome_status(client, second) == 410


def welcome_status(client, path):
    token = csrf_token(client, "/console/sign-in")
    return client.post(
        path, data={"password": PASSWORD, "confirm": PASSWORD, "csrf_token": token}
    ).status_code


def test_create_refuses_duplicates_unknown_sites_and_bad_roles(runner, shops):
    a, _ = shops
    ok = runner.invoke(args=["users", "create", "ada@example.test", "--role", "viewer"])
    assert ok.exit_code == 0 and "viewer of Shop A, Shop B" in ok.output
    again = runner.invoke(args=["users", "create", "ADA@example.test", "--role", "viewer"])
    assert again.exit_code == 1 and "exists already" in again.output
    unknown = runner.invoke(
        args=["users", "create", "bob@example.test", "--role", "viewer", "--site", "wk_nope"]
    )
    assert unknown.exit_code == 1 and "no active site has write key wk_nope" in unknown.output
    role = runner.invoke(args=["users", "create", "bob@example.test", "--role", "boss"])
    assert role.exit_code == 2 and "'boss' is not one of" in role.output
    bad = runner.invoke(args=["users", "create", "not-an-email", "--role", "viewer"])
    assert bad.exit_code == 1 and "is not an email address" in bad.output
    weak = runner.invoke(
        args=["users", "create", "bob@example.test", "--role", "viewer", "--password-stdin"],
        input="short\n",
    )
    assert weak.exit_code == 1 and "at least 10 characters" in weak.output


def test_grant_list_disable(app, runner, engine, shops):
    a, b = shops
    runner.invoke(
        args=["users", "create", "ada@example.test", "--role", "viewer", "--site", a.write_key]
    )
    granted = runner.invoke(
        args=["users", "grant", "ada@example.test", "--site", b.write_key, "--role", "owner"]
    )
    assert granted.exit_code == 0 and "ada@example.test is now owner of Shop B" in granted.output
    assert find_staff(engine, "ada@example.test").grants == {
        a.site_id: "viewer",
        b.site_id: "owner",
    }
    listed = runner.invoke(args=["users", "list"])
    assert "ada@example.test\tinvited\tShop A: viewer, Shop B: owner\tnever" in listed.output
    for args, message in [
        (
            ["users", "grant", "nobody@example.test", "--site", a.write_key, "--role", "viewer"],
            "no staff account has email nobody@example.test",
        ),
        (
            ["users", "grant", "ada@example.test", "--site", "wk_nope", "--role", "viewer"],
            "no active site has write key wk_nope",
        ),
        (["users", "disable", "nobody@example.test"], "no staff account has email"),
        (["users", "link", "nobody@example.test"], "no staff account has email"),
    ]:
        result = runner.invoke(args=args)
        assert result.exit_code == 1 and message in result.output
    disabled = runner.invoke(args=["users", "disable", "ada@example.test"])
    assert disabled.exit_code == 0
    assert "ada@example.test\tdisabled" in runner.invoke(args=["users", "list"]).output
    assert runner.invoke(args=["users", "link", "ada@example.test"]).exit_code == 1
    actions = [e.action for e in audit.entries(engine, None)]
    for action in ("staff_created", "staff_granted", "link_issued", "staff_disabled"):
        assert action in actions


def test_links_use_the_configured_public_url(app, runner):
    app.config["PUBLIC_URL"] = "https://crm.example.com"
    result = runner.invoke(args=["users", "create", "ada@example.test", "--role", "viewer"])
    assert "  https://crm.example.com/console/welcome/" in result.output


@pytest.mark.parametrize(
    "settings, public_url",
    [
        ({}, "http://127.0.0.1:8000"),
        ({"BIND": "0.0.0.0:9000"}, "http://0.0.0.0:9000"),
        ({"PUBLIC_URL": "https://crm.example.com/"}, "https://crm.example.com"),
    ],
)
def test_the_public_url_defaults_to_the_bind_address(settings, public_url):
    from webapp.config import load_config

    assert load_config({"TESTING": True, **settings}, environ={})["PUBLIC_URL"] == public_url


def test_a_disabled_account_cannot_use_its_link(app, runner, engine):
    path = link_path(
        runner.invoke(args=["users", "create", "ada@example.test", "--role", "viewer"]).output
    )
    runner.invoke(args=["users", "disable", "ada@example.test"])
    assert app.test_client().get(path).status_code == 410
    with engine.connect() as conn:
        assert conn.execute(sa.select(sign_in_links.c.used_at)).scalar() is None
