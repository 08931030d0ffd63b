"""Clients the app holds in ``app.extensions["ecrm"]``, and small accessors to reach them."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import redis
import sqlalchemy as sa
from flask import Flask, current_app

from tracking.db import make_engine
from tracking.redis_server import ensure_embedded_redis
from tracking.sites import SiteDirectory
from tracking.stream import EventSink, Spool


@dataclass
class Clients:
    """The app's connections; built once per process by :func:`init_clients`."""

    engine: sa.Engine
    redis: redis.Redis
    redis_url: str
    sink: EventSink
    spool: Spool
    sites: SiteDirectory


def redis_client(url: str, timeout: float = 2.0) -> redis.Redis:
    """A Redis client with short timeouts, so a dead server is noticed quickly."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 1.0),
        health_check_interval=30,
    )


def init_clients(app: Flask) -> Clients:
    """Connect the SQL store and Redis (starting the embedded one when none is configured)."""
    config = app.config
    engine = make_engine(
        config["DATABASE_URL"],
        json_serializer=lambda obj: orjson.dumps(obj).decode(),
        json_deserializer=orjson.loads,
    )
    url = config["REDIS_URL"] or ensure_embedded_redis(
        config["VAR_DIR"], config["REDIS_APPENDFSYNC"]
    )
    client = redis_client(url, config["REDIS_TIMEOUT_SECONDS"])
    spool = Spool(config["SPOOL_DIR"])
    clients = Clients(
        engine=engine,
        redis=client,
        redis_url=url,
        sink=EventSink(client, config["STREAM_KEY"], spool),
        spool=spool,
        sites=SiteDirectory(engine, ttl=config["SITE_CACHE_SECONDS"]),
    )
    app.extensions["ecrm"] = clients
    return clients


def clients() -> Clients:
    """The current app's clients."""
    return current_app.extensions["ecrm"]


def get_engine() -> sa.Engine:
    """The SQL engine."""
    return clients().engine


def get_redis() -> redis.Redis:
    """The Redis client."""
    return clients().redis
