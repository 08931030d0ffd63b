"""Werkzeug's URL builders generated once per distinct rule, not once per test app.

Every test gets a fresh app from ``webapp.create_app``, and binding its few hundred routes makes
Werkzeug generate, ``compile()`` and load two small Python functions per rule: most of the time a
new app takes. Such a function depends only on the rule's text, parsed parts and defaults (it
reaches the rule's converters through the rule it is bound to), so the test session keeps each one
and binds it again to an equal rule of a later app. Routing, matching and URL building are
Werkzeug's own; only the repeated code generation is skipped.
"""

from __future__ import annotations

from collections.abc import Callable

from werkzeug.routing.rules import Rule

_generate = Rule._compile_builder
_builders: dict[tuple, Callable] = {}


def _builder(rule: Rule, append_unknown: bool = True) -> Callable:
    defaults = rule.defaults or {}
    key = (
        rule.rule,
        append_unknown,
        tuple(rule._trace),
        tuple(sorted(defaults)),
        # A default for a part of the path is written into the code as its URL text.
        tuple(
            (name, rule._converters[name].to_url(defaults[name]))
            for dynamic, name in rule._trace
            if dynamic and name in defaults
        ),
    )
    builder = _builders.get(key)
    if builder is None:
        builder = _builders[key] = _generate(rule, append_unknown)
    return builder


def reuse_url_builders() -> None:
    """Make every Werkzeug rule compiled from now on reuse an equal rule's builder functions."""
    Rule._compile_builder = _builder
