"""The run command (`make run`): what it prints, and when the trainer starts."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import PROJECT_ROOT, drain, make_event
from tracking.stream import ensure_group
from webapp.supervisor import banner
from webapp.train_cli import ingest_backlog

CONFIG = {"BIND": "127.0.0.1:8000", "TRAIN_INTERVAL_MINUTES": 60.0, "VAR_DIR": "var"}


def test_the_first_start_prints_export_lines_for_both_keys():
    text = banner(CONFIG, "wk_public", "sk_secret")
    assert "    export WRITE_KEY=wk_public" in text.splitlines()
    assert "    export SERVER_KEY=sk_secret" in text.splitlines()
    assert "shown only this once" in text
    assert ".venv/bin/flask --app wsgi sites rotate-key wk_public --server" in text


def test_the_banner_says_where_mail_goes_without_the_relays_password():
    text = banner(CONFIG, None, None)
    assert "  mail:       .eml files in var/mail (ECRM_SMTP_URL is unset)" in text
    relay = {**CONFIG, "SMTP_URL": "smtps://shop:secret@mail.example:465", "MAIL_DIR": "x"}
    text = banner(relay, None, None)
    assert "  mail:       smtps://shop@mail.example:465" in text and "secret" not in text


def test_later_starts_export_the_write_key_and_say_how_to_replace_a_lost_server_key():
    text = banner(CONFIG, "wk_public", None)
    assert "    export WRITE_KEY=wk_public" in text.splitlines()
    assert "SERVER_KEY" not in text
    assert "sites rotate-key wk_public --server" in text
    assert "export" not in banner(CONFIG, None, None)
    assert "training:   off" in banner({**CONFIG, "TRAIN_INTERVAL_MINUTES": 0.0}, None, None)


def test_the_ingest_backlog_counts_what_the_worker_has_not_stored(app, tracker):
    with app.app_context():
        assert ingest_backlog() == 0  # nothing was ever queued
        assert tracker.batch([make_event(n) for n in range(3)]).status_code == 200
        c = app.config
        assert ingest_backlog() is None  # the worker has not created its group yet
        ensure_group(app.extensions["ecrm"].redis, c["STREAM_KEY"], c["CONSUMER_GROUP"])
        assert ingest_backlog() == 1  # one request, one stream entry
        drain(app)
        assert ingest_backlog() == 0


def test_after_ingest_the_first_run_starts_once_the_queue_is_drained_and_skips_tuning(
    app, runner, tracker
):
    assert tracker.batch([make_event(n) for n in range(40)]).status_code == 200
    drain(app)  # what the worker does while the trainer waits
    result = runner.invoke(
        args=["train", "--after-ingest", "--first-tune-seconds", "0", "--tune-seconds", "30"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert not any(line.startswith("  tune") for line in lines), result.output
    assert any(line.startswith("  promote") for line in lines), result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_make_run_prints_exports_and_promotes_a_first_model_then_stops_on_ctrl_c(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECRM_")}
    env.update(
        ECRM_VAR_DIR=str(tmp_path / "var"),
        ECRM_BIND=f"127.0.0.1:{_free_port()}",
        ECRM_WEB_WORKERS="1",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "webapp.supervisor"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        # The first model, and the mailer started beside the other processes.
        awaited = ("is now current", "mailer: mail goes to")
        while time.monotonic() < deadline and not all(
            line in log_path.read_text() for line in awaited
        ):
            assert process.poll() is None, log_path.read_text()
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    output = log_path.read_text()
    assert process.returncode == 0, output
    assert re.search(r"^    export WRITE_KEY=wk_\S+$", output, re.M), output
    assert re.search(r"^    export SERVER_KEY=sk_\S+$", output, re.M), output
    promoted = [line for line in output.splitlines() if line.startswith("  promote")]
    assert promoted, output
    assert os.path.islink(tmp_path / "var" / "models" / "1" / "current")
    assert output.rstrip().endswith("stopped.")
    assert f"mailer: mail goes to .eml files in {tmp_path / 'var' / 'mail'}" in output


def test_make_test_finds_no_postgres_on_a_closed_port_and_says_why():
    from tests.local_postgres import find

    port = _free_port()  # nothing listens there
    url, why = find(port=port)
    assert url is None and f"no PostgreSQL answers on 127.0.0.1:{port}" in why
    done = subprocess.run(
        ["make", "-s", "-n", "test"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    # make test falls back on the probe only when ECRM_TEST_DATABASE_URL is unset.
    assert "${ECRM_TEST_DATABASE_URL:-$(" in done.stdout and "tests.local_postgres" in done.stdout


def test_the_default_test_output_says_why_tests_skip(tmp_path):
    """As on a machine without Chromium or PostgreSQL: the summary names each reason once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECRM_")}
    env["ECRM_CHROMIUM"] = str(tmp_path / "no-chromium")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/browser",
         "tests/test_demo_shop.py", "-k", "checkout or payload_follows_the_segment_spec"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.split("skipped, and why", 1)[1]
    assert f"Chromium not found at {tmp_path / 'no-chromium'}" in summary
    assert "apt-get install chromium" in summary
    assert "PostgreSQL variant: ECRM_TEST_DATABASE_URL is unset" in summary
    assert summary.count("PostgreSQL variant") == 1  # once per reason, with its count
