"""Health: /healthz says the process is up, /readyz says events can be stored durably."""

from __future__ import annotations

import os

import redis
import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from webapp.clients import clients

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: answers while the process can serve requests."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: Redis and SQL reachable, spool depth, stream lag; 503 if events would be lost."""
    c = clients()
    config = current_app.config
    checks: dict = {}
    try:
        c.redis.ping()
        checks["redis"] = {"ok": True}
        try:
            groups = c.redis.xinfo_groups(config["STREAM_KEY"])
            stream = c.redis.xinfo_stream(config["STREAM_KEY"])
            checks["stream"] = {
                "length": stream["length"],
                "pending": sum(gr["pending"] for gr in groups),
                "groups": len(groups),
            }
        except redis.ResponseError:
            checks["stream"] = {"length": 0, "pending": 0, "groups": 0}
    except redis.RedisError as e:
        checks["redis"] = {"ok": False, "error": str(e)}
    try:
        with c.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["sql"] = {"ok": True}
    except sa.exc.SQLAlchemyError as e:
        checks["sql"] = {"ok": False, "error": str(e.__class__.__name__)}
    try:
        checks["spool"] = {"depth": c.spool.depth(), "writable": _spool_writable()}
    except OSError as e:
        checks["spool"] = {"depth": None, "writable": False, "error": str(e)}
    # Events are durable if either Redis or the spool takes them; SQL being down only delays
    # ingest (the stream holds the events), so it is reported but does not fail readiness.
    ready = checks["redis"]["ok"] or checks["spool"]["writable"]
    response = jsonify(status="ready" if ready else "unavailable", checks=checks)
    if not ready:
        response.status_code = 503
        response.headers["Retry-After"] = str(config["RETRY_AFTER_SECONDS"])
    return response


def _spool_writable() -> bool:
    directory = clients().spool.directory
    directory.mkdir(parents=True, exist_ok=True)
    return os.access(directory, os.W_OK)
