"""The house's rooms: which package may import which, module openings, module and class sizes.

DESIGN.md's layers (webapp -> demo, recommender -> tracking; only webapp imports Flask) and
STYLE.md's size habits, checked by reading the source with ``ast`` (nothing is imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("tracking", "recommender", "analytics", "accounts", "demo", "webapp")
# What each product package may import from the others (itself always).
ALLOWED = {
    "tracking": set(),
    "recommender": {"tracking"},
    "analytics": {"tracking"},
    "accounts": {"analytics", "recommender", "tracking"},
    "demo": {"tracking", "recommender"},
    "webapp": {"tracking", "recommender", "analytics", "accounts", "demo"},
}
WEB_FRAMEWORK = {"flask", "werkzeug", "flask_login", "flask_wtf", "flask_limiter", "flask_babel"}
MAX_MODULE_LINES = 450  # "about 400": a module past this is asking to be split by job
MAX_CLASS_LINES = 230  # "about 200"


def _modules() -> list[Path]:
    return sorted(path for package in PRODUCT for path in (ROOT / package).rglob("*.py"))


def _imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


MODULES = _modules()


def test_every_product_package_is_found():
    assert {path.relative_to(ROOT).parts[0] for path in MODULES} == set(PRODUCT)


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_imports_follow_the_layers(path):
    package = path.relative_to(ROOT).parts[0]
    imported = _imported(ast.parse(path.read_text()))
    others = (imported & set(PRODUCT)) - {package}
    assert others <= ALLOWED[package], f"{_name(path)} imports {sorted(others - ALLOWED[package])}"
    if package != "webapp":
        assert not imported & WEB_FRAMEWORK, f"{_name(path)} imports a web framework"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_each_module_opens_with_one_line_saying_what_it_holds(path):
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring, f"{_name(path)} has no module docstring"
    first = docstring.splitlines()[0].strip()
    assert first and len(first) <= 100, f"{_name(path)}: the first line should be one short line"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_modules_and_classes_stay_small(path):
    text = path.read_text()
    lines = text.count("\n") + 1
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines: split it by job"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{_name(path)}: class {node.name} has {size} lines"
