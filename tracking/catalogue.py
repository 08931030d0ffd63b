"""The catalogue: items a shop sells, validated and upserted in bulk."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from tracking.db import upsert
from tracking.events import InvalidEvent
from tracking.schema import items

MAX_BULK_ITEMS = 1000
MAX_PRICE = Decimal(10) ** 12  # items.price is Numeric(14, 2)
FIELDS = (
    "item_id",
    "title",
    "category",
    "price",
    "currency",
    "url",
    "image_url",
    "in_stock",
    "active",
    "attributes",
)
TEXT_LIMITS = {"item_id": 255, "title": 500, "category": 500, "url": 2000, "image_url": 2000}


class InvalidItem(InvalidEvent):
    """An item breaks the catalogue schema; ``field`` is its path in the request."""


def _bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise InvalidItem(field, "must be true or false")


def validate_item(raw: Any, path: str = "item", item_id: str | None = None) -> dict[str, Any]:
    """Return a clean item row (without site_id) or raise InvalidItem naming the field."""
    if not isinstance(raw, dict):
        raise InvalidItem(path, "must be a JSON object")
    unknown = set(raw) - set(FIELDS)
    if unknown:
        raise InvalidItem(f"{path}.{sorted(unknown)[0]}", "unknown field")
    item = dict(raw)
    if item_id is not None:
        if "item_id" in item and str(item["item_id"]) != item_id:
            raise InvalidItem(f"{path}.item_id", "does not match the id in the URL")
        item["item_id"] = item_id
    for name, limit in TEXT_LIMITS.items():
        value = item.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise InvalidItem(f"{path}.{name}", "must be a string")
        value = str(value).strip()
        if "\x00" in value:
            raise InvalidItem(f"{path}.{name}", "contains a NUL character (\\u0000)")
        if len(value) > limit:
            raise InvalidItem(f"{path}.{name}", f"longer than {limit} characters")
        item[name] = value or None
    if not item.get("item_id"):
        raise InvalidItem(f"{path}.item_id", "required")
    if not item.get("title"):
        raise InvalidItem(f"{path}.title", "required")
    for name in ("url", "image_url"):
        if item.get(name) and not item[name].startswith(("http://", "https://", "/")):
            raise InvalidItem(f"{path}.{name}", "must be an http(s) URL or a path")
    price = item.get("price")
    if price is not None and price != "":
        try:
            number = float(price)
        except (TypeError, ValueError):
            raise InvalidItem(f"{path}.price", "must be a number") from None
        # Checked after rounding to cents, as the store keeps it: 999999999999.999 rounds to
        # 1e12, which Numeric(14, 2) cannot hold.
        cents = (
            None
            if isinstance(price, bool) or not math.isfinite(number)
            else Decimal(str(price)).quantize(Decimal("0.01"))
        )
        if cents is None or not 0 <= cents < MAX_PRICE:
            raise InvalidItem(f"{path}.price", "must be a number from 0 to 1e12 (exclusive)")
        item["price"] = cents
    else:
        item["price"] = None
    currency = item.get("currency")
    if currency is not None:
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise InvalidItem(f"{path}.currency", "must be a 3-letter ISO 4217 code")
        item["currency"] = currency.upper()
    item["in_stock"] = _bool(item.get("in_stock", True), f"{path}.in_stock")
    item["active"] = _bool(item.get("active", True), f"{path}.active")
    attributes = item.get("attributes") or {}
    if isinstance(attributes, str):
        try:
            attributes = orjson.loads(attributes)
        except orjson.JSONDecodeError:
            raise InvalidItem(f"{path}.attributes", "must be a JSON object") from None
    if not isinstance(attributes, dict):
        raise InvalidItem(f"{path}.attributes", "must be a JSON object")
    if len(orjson.dumps(attributes)) > 16 * 1024:
        raise InvalidItem(f"{path}.attributes", "larger than 16 KB")
    item["attributes"] = attributes
    return {name: item.get(name) for name in FIELDS}


def upsert_items(engine: sa.Engine, site_id: int, rows: list[dict[str, Any]]) -> int:
    """Insert or update validated items (un-hiding them); return how many were written."""
    if not rows:
        return 0
    now = datetime.now(UTC)
    values = [{**row, "site_id": site_id, "hidden": False, "updated_at": now} for row in rows]
    stmt = upsert(engine, items, ["site_id", "item_id"], [*FIELDS[1:], "hidden", "updated_at"])
    with engine.begin() as conn:
        conn.execute(stmt, values)
    return len(values)


def hide_item(engine: sa.Engine, site_id: int, item_id: str) -> bool:
    """Hide an item: kept for history, never recommended again. False if unknown."""
    with engine.begin() as conn:
        result = conn.execute(
            items.update()
            .where(items.c.site_id == site_id, items.c.item_id == item_id)
            .values(hidden=True, updated_at=datetime.now(UTC))
        )
    return result.rowcount > 0


def _item_dict(row) -> dict[str, Any]:
    out = {name: row[name] for name in FIELDS}
    out["price"] = float(row["price"]) if row["price"] is not None else None
    out["hidden"] = bool(row["hidden"])
    return out


def get_item(engine: sa.Engine, site_id: int, item_id: str) -> dict[str, Any] | None:
    """One item as a JSON-ready dict, or None."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                items.select().where(items.c.site_id == site_id, items.c.item_id == item_id)
            )
            .mappings()
            .first()
        )
    return None if row is None else _item_dict(row)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_items(
    engine: sa.Engine,
    site_id: int,
    *,
    limit: int = 50,
    after: str | None = None,
    query: str | None = None,
    category: str | None = None,
    include_hidden: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of items in ``item_id`` order after ``after``; return (items, last id or None).

    Keyset paging on the primary key: writes between pages never skip or repeat an item that
    existed throughout (items are hidden, never deleted); items created behind the cursor appear
    only in a new listing. ``query`` matches item_id or title case-insensitively; ``category``
    is a path prefix (``Music`` matches ``Music`` and ``Music/Jazz``, not ``Musicals``).
    """
    where = [items.c.site_id == site_id]
    if after is not None:
        where.append(items.c.item_id > after)
    if not include_hidden:
        where.append(~items.c.hidden)
    if query:
        pattern = f"%{_like_escape(query)}%"
        where.append(
            sa.or_(
                items.c.item_id.ilike(pattern, escape="\\"),
                items.c.title.ilike(pattern, escape="\\"),
            )
        )
    if category:
        # A category path and what lies under it, as the recommendation rules read it;
        # substr rather than LIKE, which SQLite compares without case.
        under = category + "/"
        where.append(
            sa.or_(
                items.c.category == category,
                sa.func.substr(items.c.category, 1, len(under)) == under,
            )
        )
    stmt = items.select().where(*where).order_by(items.c.item_id).limit(limit + 1)
    with engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    page = [_item_dict(row) for row in rows[:limit]]
    return page, (page[-1]["item_id"] if len(rows) > limit else None)


def read_items_file(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield (location, raw item) from a CSV (header row) or JSON Lines file."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield f"line {number}", orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    raise InvalidItem(f"line {number}", f"not valid JSON ({e})") from e
    elif path.suffix.lower() == ".csv":
        for number, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
            yield f"line {number}", {k: v for k, v in row.items() if v not in (None, "")}
    else:
        raise InvalidItem(str(path), "must be a .csv or .jsonl file")


def _in_file(error: InvalidItem, location: str) -> InvalidItem:
    """Name a file's field as people read it: "line 2, field price", not "line 2.price"."""
    field = error.field.removeprefix(location)
    if field.startswith("."):
        return InvalidItem(f"{location}, field {field[1:]}", error.reason)
    return error


def import_items(
    engine: sa.Engine, site_id: int, raw_items: Iterable[tuple[str, Any]]
) -> tuple[int, list[InvalidItem]]:
    """Validate and upsert items in chunks; return (written, errors). Bad rows are skipped."""
    written, errors, chunk = 0, [], []
    for location, raw in raw_items:
        try:
            chunk.append(validate_item(raw, location))
        except InvalidItem as e:
            errors.append(_in_file(e, location))
        if len(chunk) >= MAX_BULK_ITEMS:
            written += upsert_items(engine, site_id, chunk)
            chunk = []
    written += upsert_items(engine, site_id, chunk)
    return written, errors
