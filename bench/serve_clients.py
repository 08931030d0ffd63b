"""The serving benchmark's own HTTP clients: freshness trials and the sampled cache mix."""

from __future__ import annotations

import base64
import http.client
import random
import statistics
import time
import uuid
from collections import Counter

import orjson

from tracking.identity import user_hash

ORIGIN = "http://bench.example"


def signed(secret: str | None, user_id: str) -> str:
    """``&user_hash=...``: the shop server's signature a page passes with the user id.

    Browser calls count a user id only when signed (identity verification); unsigned, the answer
    is the anonymous visitor's (trending), and the visitor's events are not the customer's.
    """
    return f"&user_hash={user_hash(secret, user_id)}" if secret else ""


class Http:
    """A keep-alive client for the freshness trials."""

    def __init__(self, port: int, write_key: str, secret: str | None = None):
        self.port, self.write_key, self.secret = port, write_key, secret
        self.auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(self, method, path, body=None, headers=None):
        """(status, body) of one request, reconnecting once when the connection dropped."""
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def items(self, user_id: str) -> tuple[int, list[str]]:
        """(status, item ids) of a customer's recommendations."""
        status, body = self.send(
            "GET",
            f"/v1/recommendations?write_key={self.write_key}&user_id={user_id}&n=10"
            + signed(self.secret, user_id),
            headers={"Origin": ORIGIN},
        )
        items = [i["item_id"] for i in orjson.loads(body)["items"]] if status == 200 else []
        return status, items

    def added(self, user_id: str, item_id: str) -> int:
        """Send ``Product Added`` for the customer; the status."""
        event = {
            "type": "track",
            "event": "Product Added",
            "userId": user_id,
            "messageId": uuid.uuid4().hex,
            "properties": {"product_id": item_id, "quantity": 1},
            **({"context": {"userHash": user_hash(self.secret, user_id)}} if self.secret else {}),
        }
        status, _ = self.send(
            "POST",
            "/v1/track",
            body=orjson.dumps(event),
            headers={
                "Content-Type": "application/json",
                "Authorization": self.auth,
                "Origin": ORIGIN,
            },
        )
        return status


def freshness(port: int, setup: dict, trials: int, users: list[str], stop=None) -> dict:
    """Seconds from an event's 2xx to a changed answer, per trial."""
    client = Http(port, setup["write_key"], setup.get("identity_secret"))
    times, failures, errors = [], 0, 0
    for n in range(trials):
        if stop is not None and stop.is_set():
            break
        user = users[n % len(users)]
        status, before = client.items(user)
        if status != 200 or not before:
            errors += 1
            continue
        if client.added(user, before[0]) // 100 != 2:
            errors += 1
            continue
        acknowledged = time.perf_counter()
        deadline = acknowledged + 5.0
        while True:
            status, after = client.items(user)
            errors += status != 200
            if after and after != before:
                times.append(time.perf_counter() - acknowledged)
                break
            if time.perf_counter() > deadline:
                failures += 1
                break
            time.sleep(0.002)
    ordered = sorted(times)
    return {
        "trials": len(times) + failures,
        "changed": len(times),
        "unchanged_after_5s": failures,
        "http_errors": errors,
        "median_ms": statistics.median(ordered) * 1000 if ordered else None,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        if ordered
        else None,
        "max_ms": ordered[-1] * 1000 if ordered else None,
    }


def cache_mix(port: int, setup: dict, paths: list[str], cold_prefix: str, samples=400) -> Counter:
    """X-Ecrm-Cache over a sample of the wrk mix (sequential requests, after the load runs)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    mix: Counter = Counter()
    rng = random.Random(3)
    for _ in range(samples):
        path = rng.choice(paths)
        if path == "COLD":
            path = f"{cold_prefix}sample-{uuid.uuid4().hex}"
        conn.request("GET", path, headers={"Origin": ORIGIN})
        response = conn.getresponse()
        response.read()
        mix[response.getheader("X-Ecrm-Cache", "-")] += 1
    return mix


# -- the run --------------------------------------------------------------------------------------
