"""The sites commands: list, show, update, rotate-key (create and revoke: test_sites_and_health)."""

from __future__ import annotations

import pytest

from tests.conftest import ORIGIN, make_event
from tracking.identity import user_hash
from tracking.sites import find_site


def value(output: str, label: str) -> str:
    """The first word after ``label:`` in a command's output."""
    return output.split(f"{label}:")[1].split()[0]


def invoke(runner, *args: str):
    result = runner.invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_list_has_a_header_row(runner, site):
    lines = invoke(runner, "sites", "list").splitlines()
    assert lines[0].split("\t") == [
        "ID",
        "WRITE KEY",
        "STATE",
        "VERIFY IDENTITY",
        "NAME",
        "ORIGINS",
    ]
    assert lines[1].split("\t") == [
        str(site.site_id),
        site.write_key,
        "active",
        "on",
        "Test shop",
        ORIGIN,
    ]


def test_create_and_show_print_the_identity_secret_but_show_never_the_server_key(runner, db):
    created = invoke(runner, "sites", "create", "Jazz", "--origin", "https://jazz.example")
    write_key, secret = value(created, "write key"), value(created, "identity secret")
    server_key = value(created, "server key")
    assert secret == find_site(db, write_key).identity_secret and len(secret) == 64
    shown = invoke(runner, "sites", "show", write_key)
    assert value(shown, "identity secret") == secret and "Jazz" in shown
    assert "https://jazz.example" in shown and "verify identity: on" in shown
    assert server_key not in shown and "only its digest is kept" in shown


def test_update_edits_origins_and_settings(runner, site, db):
    invoke(runner, "sites", "update", site.write_key, "--add-origin", "https://b.example:443/x")
    assert find_site(db, site.write_key).allowed_origins == ("https://b.example", ORIGIN)
    invoke(runner, "sites", "update", site.write_key, "--remove-origin", ORIGIN)
    assert find_site(db, site.write_key).allowed_origins == ("https://b.example",)
    invoke(
        runner,
        "sites",
        "update",
        site.write_key,
        "--origin",
        "https://c.example",
        "--origin",
        "https://d.example",
        "--store-dnt",
        "--rate-limit",
        "50",
    )
    now = find_site(db, site.write_key)
    assert now.allowed_origins == ("https://c.example", "https://d.example")
    assert (now.honour_dnt, now.rate_limit, now.verify_identity) == (False, 50, True)
    result = runner.invoke(args=["sites", "update", site.write_key, "--no-verify-identity"])
    assert result.exit_code == 0 and "anyone with the public write key" in result.output
    assert find_site(db, site.write_key).verify_identity is False
    invoke(runner, "sites", "update", site.write_key, "--verify-identity", "--honour-dnt")
    now = find_site(db, site.write_key)
    assert (now.verify_identity, now.honour_dnt, now.rate_limit) == (True, True, 50)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sites", "update", "wk_nope", "--rate-limit", "1"], "no active site has write key"),
        (["sites", "update", "{key}", "--remove-origin", "https://x.example"], "not among"),
        (["sites", "update", "{key}", "--add-origin", "ftp://x"], "must look like https://"),
        (["sites", "update", "{key}", "--rate-limit", "-1"], "rate limit"),
        (["sites", "show", "wk_nope"], "no site has write key"),
        (["sites", "rotate-key", "{key}"], "--server or --identity"),
        (["sites", "rotate-key", "wk_nope", "--server"], "no active site has write key"),
    ],
)
def test_bad_site_commands_say_what_is_wrong(runner, site, args, message):
    result = runner.invoke(args=[a.format(key=site.write_key) for a in args])
    assert result.exit_code != 0 and message in result.output


def test_rotate_the_server_key(runner, client, site):
    output = invoke(runner, "sites", "rotate-key", site.write_key, "--server")
    new_key = value(output, "new server key")
    assert new_key.startswith("sk_") and "shown once" in output and "stops working" in output
    old = client.post("/v1/track", json=make_event(1), auth=(site.server_key, ""))
    assert old.status_code == 401
    new = client.post("/v1/track", json=make_event(2), auth=(new_key, ""))
    assert new.status_code == 200
    assert (
        client.post("/v1/track", json=make_event(3), auth=(site.write_key, "")).status_code == 200
    )


def test_rotate_the_identity_secret(runner, site, db):
    output = invoke(runner, "sites", "rotate-key", site.write_key, "--identity")
    secret = value(output, "new identity secret")
    assert (
        secret != site.identity_secret and find_site(db, site.write_key).identity_secret == secret
    )
    assert "no longer verify" in output
    shown = invoke(runner, "sites", "show", site.write_key)
    assert value(shown, "identity secret") == secret
    assert user_hash(secret, "u") != user_hash(site.identity_secret, "u")
