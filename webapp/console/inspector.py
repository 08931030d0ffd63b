"""The model inspector: one customer's recent events, their recommendations now, their neighbours.

``/console/<site_id>/models/inspect?customer=ID`` (viewer). The recommendations come from the app's
serving layer, the same call the recommendation API makes, so the page shows what the API would
answer (its ``source``, model version and each item's reason). The most similar customers are the
model's (the API's ``/v1/customers/<id>/similar``), each with what they bought. Every query reads
one customer's rows by index (:mod:`recommender.inspector`).
"""

from __future__ import annotations

import orjson
from flask import g, request, url_for

from recommender.inspector import (
    UnknownCustomer,
    anonymous_ids,
    customer_traits,
    purchases,
    recent_events,
)
from recommender.serving import answer_dict
from webapp.clients import clients
from webapp.console import bp
from webapp.console.access import site_page
from webapp.console.tables import Column, Table, respond
from webapp.recommend import MAX_ID, serving

SIMILAR = 5
RECOMMENDED = 10


def _minute(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _tables(events: list[dict], answer: dict, neighbours: list[dict]) -> list[Table]:
    return [
        Table(
            "events",
            "Recent events",
            [
                Column("at", "When (UTC)"),
                Column("event", "Event"),
                Column("item_id", "Item"),
                Column("title", "Title"),
                Column("order_id", "Order"),
                Column("as", "As"),
            ],
            [{**e, "at": _minute(e["at"])} for e in events],
            empty="No events stored for this customer.",
        ),
        Table(
            "recommendations",
            "Recommendations now",
            [
                Column("position", "#", "int"),
                Column("item_id", "Item"),
                Column("title", "Title"),
                Column("reason", "Reason"),
                Column("score", "Score", "float"),
            ],
            answer["items"],
            note=f"source: {answer['source']} · model {answer['model_version'] or 'none'}"
            + (" · this customer is in the holdout group" if answer["holdout"] else ""),
            empty="No item can be recommended (the catalogue has nothing servable).",
        ),
        Table(
            "similar",
            "Most similar customers and what they bought",
            [
                Column("customer", "Customer"),
                Column("similarity", "Similarity", "float"),
                Column("bought", "Bought (newest first)"),
            ],
            neighbours,
            links={
                "customer": lambda row: url_for(
                    "console.inspect", site_id=g.site.site_id, customer=row["customer"]
                )
            },
            empty="The model has no neighbours for this customer (not in the current model).",
        ),
    ]


@bp.get("/<int:site_id>/models/inspect")
@site_page("viewer")
def inspect(site_id: int):
    """Type a customer id; see their events, their recommendations and their neighbours."""
    customer = request.args.get("customer", "").strip()
    if not customer:
        return respond("console/inspector.html", [], customer="", errors={})
    if len(customer) > MAX_ID or "\x00" in customer:
        errors = {"customer": f"A customer id has at most {MAX_ID} characters."}
        return respond("console/inspector.html", [], customer=customer[:MAX_ID], errors=errors), 422
    engine = clients().engine
    with engine.connect() as conn:
        try:
            traits = customer_traits(conn, site_id, customer)
        except UnknownCustomer:
            errors = {"customer": f"{g.site.name} has no customer with this id."}
            return respond("console/inspector.html", [], customer=customer, errors=errors), 404
        anonymous = anonymous_ids(conn, site_id, customer)
        events = recent_events(conn, site_id, customer, anonymous)
    answer = serving().recommend(site_id, user_id=customer, n=RECOMMENDED)
    shown = orjson.loads(answer.body) if answer.body is not None else answer_dict(answer)
    similar = serving().similar_customers(site_id, customer, k=SIMILAR, n=1)
    neighbours = similar.extra.get("customers", [])
    with engine.connect() as conn:
        bought = purchases(conn, site_id, [n["user_id"] for n in neighbours])
    rows = [
        {
            "customer": n["user_id"],
            "similarity": n["similarity"],
            "bought": "; ".join(
                f"{line['title']} ×{line['quantity']}" for line in bought.get(n["user_id"], [])
            )
            or "nothing yet",
        }
        for n in neighbours
    ]
    return respond(
        "console/inspector.html",
        _tables(events, shown, rows),
        customer=customer,
        errors={},
        traits=traits,
        anonymous=anonymous,
        answer=shown,
    )
