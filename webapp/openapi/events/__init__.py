"""The Segment events the collector accepts, as pydantic models and their component schemas.

``models(config)`` gives the typed models (their limits from the configuration) and
``schemas(config)`` the JSON Schema pydantic generates from them, in the document's form.
The collector validates with its own code (tracking/events.py); tests check the two agree.
"""

from webapp.openapi.events.calls import models, schemas
from webapp.openapi.events.examples import EXAMPLE_BATCH, EXAMPLE_CONTEXT, EXAMPLE_EVENTS
from webapp.openapi.events.patterns import NO_NUL, NOT_BLANK

__all__ = [
    "EXAMPLE_BATCH",
    "EXAMPLE_CONTEXT",
    "EXAMPLE_EVENTS",
    "NOT_BLANK",
    "NO_NUL",
    "models",
    "schemas",
]
