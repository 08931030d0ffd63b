"""The demo's events: planned session steps written as Segment events with times and ids."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from demo.spec import ORIGIN

if TYPE_CHECKING:
    from demo.customers import Person

LIBRARY_NAME, LIBRARY_VERSION = "ecrm-demo", "1"
# A session is squeezed to fit both this span and what is left of the window.
MAX_SESSION_MS = 4 * 3_600_000
MAX_EVENT_GAP_MS = 240_000


class Step(NamedTuple):
    """One planned event of a session, before it gets its time and ids."""

    kind: str  # page, track or identify
    name: str  # the track event or the page name
    payload: dict  # properties, or traits for identify
    path: str  # the page the browser is on
    title: str
    quick: bool = False  # follows the previous step within the same page load


class EventLog:
    """The events of every session played, in the order played; sorted and stamped by finish."""

    def __init__(self, rnd: random.Random, end: int):
        self.rnd, self.end = rnd, end  # the simulator's random stream; end of the window (ms)
        self.events: list[dict] = []
        self.times: list[int] = []
        self.order_events: list[int] = []  # positions in self.events, numbered once sorted

    def write(self, person: Person, steps: list[Step], begin: int, signed_in: bool) -> int:
        """Turn planned steps into events; return the time of the last one."""
        rnd = self.rnd
        gaps = [0]
        for step in steps[1:]:
            if step.quick:
                gaps.append(rnd.randint(300, 2500))
            else:
                gap = math.exp(rnd.gauss(10.1, 0.8))  # log-normal, median about 24 s
                gaps.append(int(min(MAX_EVENT_GAP_MS, max(1500.0, gap))))
        span, limit = sum(gaps), min(MAX_SESSION_MS, self.end - begin - 1000)
        if span > limit:
            gaps = [max(1, gap * limit // span) for gap in gaps]

        anonymous_id, user_agent = (
            person.devices[0] if rnd.random() < 0.65 else rnd.choice(person.devices)
        )
        user_id = person.user_id if signed_in else None
        moment = begin
        events, times = self.events, self.times
        for step, gap in zip(steps, gaps, strict=True):
            moment += gap
            kind = step.kind
            event: dict[str, Any] = {"type": kind, "messageId": None, "anonymousId": anonymous_id}
            if kind == "identify":
                user_id = person.user_id
            if user_id is not None:
                event["userId"] = user_id
            event["timestamp"] = None
            if kind == "track":
                event["event"] = step.name
                if step.name == "Order Completed":
                    self.order_events.append(len(events))
                event["properties"] = step.payload
            elif kind == "page":
                event["name"] = step.name
                event["properties"] = step.payload
            else:
                event["traits"] = dict(step.payload)
            event["context"] = {
                "library": {"name": LIBRARY_NAME, "version": LIBRARY_VERSION},
                "page": {"path": step.path, "url": ORIGIN + step.path, "title": step.title},
                "userAgent": user_agent,
            }
            events.append(event)
            times.append(moment)
        return moment

    def finish(self, seed: np.random.SeedSequence) -> list[dict]:
        """Sort the events by time and give them timestamps, messageIds and order ids."""
        times = np.asarray(self.times, dtype=np.int64)
        order = np.argsort(times, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        for number, position in enumerate(sorted(self.order_events, key=rank.__getitem__), 1):
            self.events[position]["properties"]["order_id"] = f"ord-{number:06d}"
        stamps = iso_ms(times[order])
        message_ids = _uuid4_strings(np.random.default_rng(seed), len(order))
        events = [self.events[i] for i in order.tolist()]
        for event, message_id, stamp in zip(events, message_ids, stamps, strict=True):
            event["messageId"] = message_id
            event["timestamp"] = stamp
        return events


def _uuid4_strings(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` random UUID strings, each equal to str(uuid.UUID(int=..., version=4))."""
    # Setting the version and variant bits of all rows at once is several times faster than a
    # uuid.UUID per event, which matters at a million events.
    raw = np.frombuffer(rng.bytes(16 * count), dtype=np.uint8).reshape(count, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.tobytes().hex()
    return [
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, 32 * count, 32)
    ]  # fmt: skip


def iso_ms(epoch_ms: list[int] | np.ndarray) -> list[str]:
    """ISO 8601 UTC timestamps with milliseconds and a Z, one per epoch-milliseconds value."""
    # One vectorised conversion instead of a datetime per event.
    stamps = np.asarray(epoch_ms, dtype=np.int64).astype("datetime64[ms]")
    return [text + "Z" for text in np.datetime_as_string(stamps, unit="ms").tolist()]
