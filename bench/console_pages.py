"""The console benchmark's timings: every console page and report API call, warm, in-process."""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import sqlalchemy as sa

from accounts.staff import create_staff, find_staff, grant
from analytics.lift_archive import archive
from analytics.periods import utc_today
from analytics.schema import lift_archive as lift_archive_table
from bench.harness.machine import log
from tracking.schema import customers

EMAIL = "bench-owner@shop.example"
PASSWORD = "bench console owner password"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
# Console GET routes that are not pages of a site's reports (forms, sign-in, job polling).
SKIPPED_ARGS = {"job_id", "token"}
# Report API routes under these prefixes are timed.
API_PREFIXES = ("/v1/reports", "/v1/rules")
TARGET_MS = 300.0


@dataclass
class Timing:
    """One URL timed N times (server time of the WSGI call, warm)."""

    name: str
    url: str
    status: int = 0
    ms: list[float] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return float(np.percentile(self.ms, 50)) if self.ms else float("nan")

    @property
    def p95(self) -> float:
        return float(np.percentile(self.ms, 95)) if self.ms else float("nan")


def sign_in(app, client, site_id: int) -> None:
    """An owner of ``site_id`` signed in through the sign-in form (CSRF token included)."""
    engine = app.extensions["ecrm"].engine
    if find_staff(engine, EMAIL) is None:
        create_staff(engine, EMAIL, password=PASSWORD)
    grant(engine, EMAIL, site_id, "owner")
    page = client.get("/console/sign-in").get_data(as_text=True)
    token = CSRF_INPUT.search(page).group(1)
    response = client.post(
        "/console/sign-in", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    if response.status_code != 303:
        raise RuntimeError(f"sign-in answered {response.status_code}: {response.data[:300]!r}")


def a_customer(engine: sa.Engine, site_id: int) -> str:
    """A customer with activity (the generator's customer 42, else any)."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(customers.c.user_id)
            .where(customers.c.site_id == site_id)
            .order_by(customers.c.user_id)
            .offset(42)
            .limit(1)
        ).scalar()
    return found or "u0000000"


def console_urls(app, site_id: int, user_id: str) -> list[tuple[str, str]]:
    """(name, URL) of every console GET page of a site, default and 30-day range, and searches."""
    urls: list[tuple[str, str]] = []
    values = {"site_id": site_id, "user_id": user_id, "customer_id": user_id}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith("console.") or "GET" not in rule.methods:
            continue
        if "site_id" not in rule.arguments or rule.arguments & SKIPPED_ARGS:
            continue
        missing = rule.arguments - values.keys()
        if missing:
            log(f"skipped {rule.rule}: no value for {sorted(missing)}")
            continue
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **{a: values[a] for a in rule.arguments})
        name = rule.endpoint.removeprefix("console.")
        urls.append((name, url))
        urls.append((f"{name} 30d", f"{url}?range=30"))
        if rule.endpoint == "console.customers":
            urls.append(("customers search", f"{url}?q={user_id[:-2]}"))
            urls.append(("customers search email", f"{url}?q={user_id}%40example.com"))
        if rule.endpoint == "console.inspect":
            urls.append(("inspect customer", f"{url}?customer={user_id}"))
    return urls


def api_urls(app) -> list[tuple[str, str]]:
    """(name, URL) of every report API GET call, for the last 30 days."""
    today = utc_today()
    period = f"from={(today - timedelta(days=29)).isoformat()}&to={today.isoformat()}"
    urls = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.arguments:
            continue
        if rule.rule.startswith(API_PREFIXES):
            sep = "?" if rule.rule.startswith("/v1/reports") else ""
            urls.append((f"API {rule.rule}", rule.rule + (f"{sep}{period}" if sep else "")))
    return urls


def time_urls(
    client, urls: list[tuple[str, str]], calls: int, headers: dict | None = None
) -> list[Timing]:
    """Each URL once untimed (warm), then ``calls`` times: server time of the WSGI call."""
    out = []
    for name, url in urls:
        t = Timing(name, url)
        t.status = client.get(url, headers=headers).status_code
        for _ in range(calls if t.status < 400 else 0):
            t0 = time.perf_counter()
            response = client.get(url, headers=headers)
            t.ms.append((time.perf_counter() - t0) * 1000)
            response.close()
        log(f"  {name:32} {t.status}  p50 {t.p50:8.1f} ms  p95 {t.p95:8.1f} ms")
        out.append(t)
    return out


def lift_urls(app) -> tuple[tuple[str, str], tuple[str, str]]:
    """The performance page (30 days) and the lift API call (the same 30 days)."""
    api = next((name, url) for name, url in api_urls(app) if "/v1/reports/lift" in url)
    return ("performance 30d", "/console/1/recommendations?range=30"), api


def _lift_stored(client, headers: dict) -> bool:
    api = next(url for _, url in api_urls(client.application) if "/v1/reports/lift" in url)
    response = client.get(api, headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"{api} answered {response.status_code}")
    return response.get_json()["stored"]


def time_lift_cold(
    app, engine: sa.Engine, web, api_client, headers: dict, calls: int
) -> tuple[list[Timing], float]:
    """The lift page and call with no stored report, then the scheduler's job once (seconds)."""
    with engine.begin() as conn:
        conn.execute(lift_archive_table.delete().where(lift_archive_table.c.site_id == 1))
    if _lift_stored(api_client, headers):
        raise RuntimeError("the lift was served stored with no stored report")
    page, api = lift_urls(app)
    cold = time_urls(web, [(f"{page[0]}, lift live", page[1])], calls)
    cold += time_urls(api_client, [(f"{api[0]}, live", api[1])], calls, headers)
    t0 = time.perf_counter()
    archive(engine, 1, app.config["HOLDOUT_SHARE"])
    return cold, time.perf_counter() - t0


def check_lift_stored(api_client, headers: dict) -> None:
    """The timed lift call was served from the stored report (else the timings mislead)."""
    if not _lift_stored(api_client, headers):
        raise RuntimeError("the lift was computed live after the job: the stored one went stale")


def profile(client, timing: Timing, headers: dict | None, calls: int = 5) -> str:
    """cProfile of a few calls of one URL: the top functions by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        client.get(timing.url, headers=headers).close()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).sort_stats("cumulative")
    stats.print_stats(r"(analytics|webapp|tracking|accounts|recommender)/", 14)
    out.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(8)
    return out.getvalue()
