"""Sites CLI, config validation, health and readiness."""

from __future__ import annotations

import pytest

from tests.conftest import make_event
from webapp.config import ConfigError, load_config


def test_sites_create_list_revoke(runner, client):
    result = runner.invoke(
        args=["sites", "create", "Jazz shop", "--origin", "https://Jazz.Example:443/x"]
    )
    assert result.exit_code == 0, result.output
    write_key = result.output.split("write key:")[1].split()[0]
    server_key = result.output.split("server key:")[1].split()[0]
    assert "https://jazz.example" in result.output
    listing = runner.invoke(args=["sites", "list"]).output
    assert write_key in listing and "active" in listing and server_key not in listing
    ok = client.post("/v1/track", json=make_event(1), auth=(write_key, ""))
    assert ok.status_code == 200
    assert runner.invoke(args=["sites", "revoke", write_key]).exit_code == 0
    refused = client.post("/v1/track", json=make_event(2), auth=(write_key, ""))
    assert refused.status_code == 401
    assert "revoked" in runner.invoke(args=["sites", "list"]).output
    again = runner.invoke(args=["sites", "revoke", write_key])
    assert again.exit_code != 0 and "no active site" in again.output


def test_sites_create_refuses_bad_origin(runner):
    result = runner.invoke(args=["sites", "create", "Bad", "--origin", "ftp://x"])
    assert result.exit_code != 0
    assert "must look like https://shop.example" in result.output


def test_config_layers_and_errors(tmp_path):
    env = {"ECRM_MAX_BATCH_EVENTS": "100", "ECRM_SECRET_KEY": "s"}
    config = load_config({"MAX_EVENT_BYTES": 1000}, environ=env)
    assert config["MAX_BATCH_EVENTS"] == 100 and config["MAX_EVENT_BYTES"] == 1000
    assert load_config({"MAX_BATCH_EVENTS": 5}, environ=env)["MAX_BATCH_EVENTS"] == 5
    with pytest.raises(ConfigError, match="ECRM_SECRET_KEY is not set"):
        load_config({"VAR_DIR": str(tmp_path)}, environ={})
    with pytest.raises(ConfigError, match="ECRM_MAX_BATCH_EVENTS='many' is not a valid int"):
        load_config(environ={"ECRM_MAX_BATCH_EVENTS": "many", "ECRM_SECRET_KEY": "s"})
    with pytest.raises(ConfigError, match="ECRM_REDIS_URL"):
        load_config(environ={"ECRM_REDIS_URL": "localhost:6379", "ECRM_SECRET_KEY": "s"})
    with pytest.raises(ConfigError, match="ECRM_DATABASE_URL"):
        load_config(environ={"ECRM_DATABASE_URL": "mysql://x", "ECRM_SECRET_KEY": "s"})
    with pytest.raises(ConfigError, match="ECRM_TESTING"):
        load_config(environ={"ECRM_TESTING": "perhaps"})


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.get_json()["checks"]
    assert checks["redis"]["ok"] and checks["sql"]["ok"]
    assert checks["spool"] == {"depth": 0, "writable": True}
    assert {"length", "pending"} <= set(checks["stream"])
