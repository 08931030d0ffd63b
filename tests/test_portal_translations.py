"""The portal's Korean translations are complete and the committed .mo is the compiled .po.

Strings are extracted from the portal's code and templates as `pybabel extract -F
webapp/portal/babel.cfg` does; every one needs a Korean translation, and the .mo shipped beside
the .po (so no build step is needed) must hold exactly the .po's translations.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from accounts.addresses import check_address
from accounts.profile import check_email, check_profile
from webapp.portal.reasons import REASONS

ROOT = Path(__file__).resolve().parent.parent
KO = ROOT / "webapp/portal/translations/ko/LC_MESSAGES"


def extracted() -> set[str]:
    found = set()
    for method, directory in (("python", "webapp/portal"), ("jinja2", "webapp/templates/portal")):
        pattern = "**.py" if method == "python" else "**.html"
        for _, _, message, _, _ in extract_from_dir(
            ROOT / directory, [(pattern, method)], keywords={"_": None, "gettext": None, "N_": None}
        ):
            found.add(message if isinstance(message, str) else message[0])
    return found


def catalog():
    with open(KO / "messages.po", "rb") as f:
        return read_po(f, locale="ko")


def test_every_portal_string_has_a_korean_translation():
    translations = {m.id: m.string for m in catalog() if m.id and not m.fuzzy}
    strings = extracted()
    assert len(strings) > 80
    missing = sorted(s for s in strings if not translations.get(s))
    assert missing == []


def test_the_committed_mo_is_the_compiled_po():
    with open(KO / "messages.mo", "rb") as f:
        compiled = read_mo(f)
    po = {m.id: m.string for m in catalog() if m.id and m.string and not m.fuzzy}
    mo = {m.id: m.string for m in compiled if m.id}
    assert mo == po, "run: pybabel compile -d webapp/portal/translations"


@pytest.mark.parametrize(
    "form",
    [
        {"name": "x" * 201, "phone": "1", "birthday": "nope"},
        {"name": "\x01", "phone": "+1 (555)", "birthday": "1800-01-01"},
        {"phone": "x" * 40, "birthday": "2999-01-01"},
    ],
)
def test_every_profile_problem_is_translatable(form):
    _, problems = check_profile(form)
    assert problems and set(problems.values()) <= set(REASONS)


@pytest.mark.parametrize(
    "form",
    [
        {},
        {"kind": "x", "name": "n" * 201, "line1": "\x02", "city": "c" * 101, "country": "KOR"},
        {"kind": "billing", "postal_code": "!!", "country": "1", "region": "r" * 101},
        {"postal_code": "p" * 21, "line2": "l" * 201, "phone": "abc"},
    ],
)
def test_every_address_problem_is_translatable(form):
    _, problems = check_address(form)
    assert problems and set(problems.values()) <= set(REASONS)


@pytest.mark.parametrize("email", ["", "x", "a" * 255, "a@b"])
def test_every_email_problem_is_translatable(email):
    problems: dict[str, str] = {}
    check_email(email, problems)
    assert problems and set(problems.values()) <= set(REASONS)
