"""Example Segment events and a batch, shown in the document and sent by the tests."""

from __future__ import annotations

from typing import Any

EXAMPLE_CONTEXT = {
    "page": {"url": "https://shop.example/p/sku-0001", "path": "/p/sku-0001", "title": "Blue mug"},
    "userAgent": "Mozilla/5.0",
    "locale": "en-GB",
}
EXAMPLE_EVENTS: dict[str, dict[str, Any]] = {
    "track": {
        "event": "Product Viewed",
        "anonymousId": "a-1",
        "messageId": "0b7c2f9e-3d0a-4f51-9d2e-6b1f8a4c7e21",
        "timestamp": "2025-11-20T10:00:00.000Z",
        "properties": {"product_id": "sku-0001", "price": 12.5, "currency": "EUR"},
        "context": EXAMPLE_CONTEXT,
    },
    "page": {"anonymousId": "a-1", "name": "Blue mug", "properties": {"path": "/p/sku-0001"}},
    "identify": {"anonymousId": "a-1", "userId": "cust-00042", "traits": {"age": 34}},
    "alias": {"previousId": "a-1", "userId": "cust-00042"},
    "screen": {"userId": "cust-00042", "name": "Basket"},
    "group": {"userId": "cust-00042", "groupId": "acme", "traits": {"name": "Acme Ltd"}},
}
EXAMPLE_BATCH = {
    "batch": [
        {"type": "track", **EXAMPLE_EVENTS["track"]},
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "cust-00042",
            "properties": {
                "order_id": "o-1001",
                "total": 25.0,
                "currency": "EUR",
                "products": [{"product_id": "sku-0001", "price": 12.5, "quantity": 2}],
            },
        },
    ],
    "sentAt": "2025-11-20T10:00:01.000Z",
}
