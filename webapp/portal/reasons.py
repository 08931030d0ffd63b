"""The field problems accounts.profile and accounts.addresses report, marked for translation.

Those packages do not import Flask-Babel: they say what is wrong in English, and the portal's
forms show ``gettext(reason)`` beside the field. Each reason they can give is listed here so
the extractor finds it (tests/test_portal_translations.py checks that none is missing).
"""

from __future__ import annotations


def N_(text: str) -> str:  # noqa: N802  (gettext's conventional name for "mark only")
    """Mark ``text`` for extraction; translated where it is shown."""
    return text


REASONS = (
    N_("must not contain control characters"),
    N_("is required"),
    N_("must be at most 2 characters"),
    N_("must be at most 20 characters"),
    N_("must be at most 32 characters"),
    N_("must be at most 100 characters"),
    N_("must be at most 200 characters"),
    N_("must be at most 254 characters"),
    N_("must be an email address like name@example.com"),
    N_("must be a phone number of 7 to 15 digits, like +82 2 1234 5678"),
    N_("must be a date like 1990-04-30"),
    N_("must be between 1900-01-01 and today"),
    N_("must be shipping or billing"),
    N_("must be letters, digits, spaces or dashes"),
    N_("must be a two-letter country code like KR or DE"),
)

# The default topics' labels (accounts.preferences.DEFAULT_TOPICS); a site's own are shown as
# the site wrote them.
TOPIC_LABELS = (
    N_("Offers and discounts"),
    N_("Products picked for you"),
    N_("Updates about your orders"),
    N_("Newsletter"),
)
