"""Request validation from the declared models: a query or JSON body, or a 400 naming the field.

A model may say which reason to answer per field (``reasons``, by ``field`` or
``field:error_type``), which empty query values count as absent (``empty_is_absent``) and in
which order fields are checked when several are wrong (``check_order``). A validator that raises
``PydanticCustomError("reason", text)`` answers ``text`` itself.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from webapp.errors import ApiError

Model = TypeVar("Model", bound=BaseModel)
OWN_REASON = "reason"


def parse_query(model: type[Model]) -> Model:
    """The request's query parameters (the first of each name) as ``model``, or a 400."""
    absent = getattr(model, "empty_is_absent", ())
    args = {name: value for name, value in request.args.items() if value or name not in absent}
    return validate(model, args)


def parse_json(model: type[Model], body: Any, where: str = "body") -> Model:
    """A decoded JSON body as ``model``, or a 400 naming the field under ``where``."""
    return validate(model, body, where)


def validate(model: type[Model], data: Any, where: str = "") -> Model:
    """``data`` as ``model``; the first failure (in ``check_order``) as the API's 400."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise _api_error(model, e.errors(include_url=False, include_input=False), where) from None


def _field(location: tuple, where: str) -> str:
    path = where
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{part}"
    return path or "body"


def _api_error(model: type[BaseModel], errors: list[dict[str, Any]], where: str) -> ApiError:
    order = list(getattr(model, "check_order", ())) + list(model.model_fields)

    def rank(e: dict[str, Any]) -> int:
        if not e["loc"]:
            return -1
        # An unknown field (extra="forbid") is in no order: after the declared ones.
        return order.index(e["loc"][0]) if e["loc"][0] in order else len(order)

    first = min(errors, key=rank)
    name = str(first["loc"][0]) if first["loc"] else ""
    reasons = getattr(model, "reasons", {})
    if first["type"] == OWN_REASON:
        reason = first["msg"]
    else:
        reason = reasons.get(f"{name}:{first['type']}") or reasons.get(name) or first["msg"]
    return ApiError(400, _field(first["loc"], where), reason)
