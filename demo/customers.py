"""The demo's customers: who they are, their taste cluster, spend, devices and visit times.

Spend propensity follows a Pareto curve (few customers, most revenue), a share of customers are
repeat buyers, and visits follow the weekly and daily rhythm of a shop's traffic.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from demo.events import iso_ms
from demo.spec import DAY_MS, END_MARGIN_MS, ShopSpec
from demo.words import CITIES, FIRST_NAMES, LAST_NAMES

# Relative traffic by hour of day (UTC) and by weekday (Monday first): evenings and weekends peak.
HOUR_WEIGHTS = (
    0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.4, 1.6, 1.6, 1.8,
    2.2, 2.0, 1.7, 1.6, 1.7, 2.0, 2.6, 3.2, 3.4, 3.0, 2.0, 0.9,
)  # fmt: skip
WEEKDAY_WEIGHTS = (1.0, 0.95, 0.95, 1.0, 1.1, 1.3, 1.4)

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
)


@dataclass
class Person:
    """A customer as the simulation sees them (the public row is in Shop.customers)."""

    user_id: str
    traits: dict
    cluster: int
    value: float  # Pareto-distributed spend propensity
    repeat_buyer: bool
    devices: list[tuple[str, str]]  # (anonymousId, userAgent)
    session_starts: list[int]
    orders: int = 0
    bought: set[int] = field(default_factory=set)  # durable goods are not bought twice
    staples: list[int] = field(default_factory=list)  # consumables bought, to re-buy


def make_customers(
    spec: ShopSpec, start_ms: int, seed: np.random.SeedSequence
) -> tuple[list[dict], list[Person]]:
    """The public customer rows (Shop.customers) and the people the simulation plays."""
    rng = np.random.default_rng(seed)
    rnd = random.Random(int(seed.generate_state(1, np.uint64)[0]))
    n = spec.n_customers
    cluster = rng.integers(0, spec.n_clusters, n)
    # alpha 1.3: the heavy tail that gives the familiar "few customers, most revenue" shape.
    value = np.minimum(1.0 + rng.pareto(1.3, n), 40.0)
    repeat = rng.random(n) < spec.repeat_buyer_share
    age = np.clip(np.round(rng.normal(41, 13, n)), 18, 85).astype(int)
    city_weights = 1.0 / np.arange(1, len(CITIES) + 1) ** 0.6
    city = rng.choice(len(CITIES), n, p=city_weights / city_weights.sum())
    created = start_ms - rng.integers(DAY_MS, 900 * DAY_MS, n)
    created_iso = iso_ms(created)
    # Engaged customers visit more and spend more; the gamma term keeps visits varied.
    activity = value**0.3 * rng.gamma(2.0, 0.5, n)
    activity *= spec.sessions_per_customer / activity.mean()
    sessions = np.maximum(rng.poisson(activity), 1)
    starts = _session_starts(spec, start_ms, int(sessions.sum()), rng)
    owner = np.repeat(np.arange(n), sessions)
    order = np.lexsort((starts, owner))
    starts = starts[order].tolist()
    bounds = np.concatenate(([0], np.cumsum(sessions))).tolist()

    rows: list[dict] = []
    people: list[Person] = []
    for i in range(n):
        user_id = f"cust-{i + 1:05d}"
        first, last = rnd.choice(FIRST_NAMES), rnd.choice(LAST_NAMES)
        traits = {
            "email": f"{user_id}@example.test",
            "name": f"{first} {last}",
            "first_name": first,
            "last_name": last,
            "age": int(age[i]),
            "city": CITIES[int(city[i])],
            "created_at": created_iso[i],
        }
        n_devices = 1 + (rnd.random() < 0.4) + (rnd.random() < 0.15)
        devices = [(_uuid4(rnd), rnd.choice(USER_AGENTS)) for _ in range(n_devices)]
        rows.append({"user_id": user_id, "traits": traits, "cluster": int(cluster[i])})
        people.append(
            Person(
                user_id=user_id,
                traits=traits,
                cluster=int(cluster[i]),
                value=float(value[i]),
                repeat_buyer=bool(repeat[i]),
                devices=devices,
                session_starts=starts[bounds[i] : bounds[i + 1]],
            )
        )
    return rows, people


def _session_starts(spec: ShopSpec, start_ms: int, count: int, rng: np.random.Generator):
    """Session start times (epoch ms) following the weekly and daily rhythm."""
    first_weekday = datetime.fromtimestamp(start_ms / 1000, tz=UTC).weekday()
    day_weights = np.array([WEEKDAY_WEIGHTS[(first_weekday + d) % 7] for d in range(spec.days)])
    hour_weights = np.array(HOUR_WEIGHTS)
    day = rng.choice(spec.days, count, p=day_weights / day_weights.sum())
    hour = rng.choice(24, count, p=hour_weights / hour_weights.sum())
    starts = start_ms + day * DAY_MS + hour * 3_600_000 + rng.integers(0, 3_600_000, count)
    last_start = start_ms + spec.days * DAY_MS - END_MARGIN_MS
    # Sessions drawn into the last half hour move back by half an hour.
    return np.where(starts > last_start, starts - END_MARGIN_MS, starts)


def _uuid4(rnd: random.Random) -> str:
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))
