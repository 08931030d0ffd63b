"""`make run` and the console: the demo shop's owner and a sign-in link the first time only."""

from __future__ import annotations

import re

from accounts.staff import find_staff
from demo.load import DEMO_SITE_NAME
from tracking.sites import create_site
from webapp.supervisor import DEMO_OWNER, Supervisor, banner

CONFIG = {"BIND": "127.0.0.1:8000", "TRAIN_INTERVAL_MINUTES": 60.0, "VAR_DIR": "var"}


def test_the_first_start_makes_the_demo_owner_and_prints_a_link_that_works(app):
    engine = app.extensions["ecrm"].engine
    site, _ = create_site(engine, DEMO_SITE_NAME, ["http://127.0.0.1:8000"])
    supervisor = Supervisor()
    link, owner = supervisor.console_owner(app, app.config)
    assert owner == DEMO_OWNER
    assert find_staff(engine, DEMO_OWNER).grants == {site.site_id: "owner"}
    text = banner(CONFIG, site.write_key, "sk_secret", link, owner)
    assert f"  console:    {link}" in text.splitlines()
    path = re.search(r"/console/welcome/[\w-]+", link).group(0)
    assert app.test_client().get(path).status_code == 200
    # Later starts make nobody and say how to get a new link.
    assert supervisor.console_owner(app, app.config) == (None, DEMO_OWNER)
    later = banner(CONFIG, site.write_key, None, None, DEMO_OWNER)
    assert "  console:    http://127.0.0.1:8000/console/" in later.splitlines()
    assert f".venv/bin/flask --app wsgi users link {DEMO_OWNER}" in later


def test_without_the_demo_shop_no_owner_is_made(app):
    assert Supervisor(with_demo=False).console_owner(app, app.config) == (None, None)
    assert find_staff(app.extensions["ecrm"].engine, DEMO_OWNER) is None
    assert "users link EMAIL" in banner(CONFIG, None, None)
