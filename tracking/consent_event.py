"""Segment's consent event, as the collector checks it and the store reads it.

``ecrm('consent', ...)`` (static/ecrm.js) sends "Segment Consent Preference Updated" with the
choice in ``context.consent.categoryPreferences.tracking`` and the words the shop showed in
``properties.wording``; accounts.tracker_consent turns stored ones into consent records.
"""

from __future__ import annotations

from tracking.errors import InvalidEvent

# Segment's consent event (Consent Management): a change of the visitor's choices, as
# ``context.consent.categoryPreferences``. Ours is the category ``tracking``; the shop's words
# come in ``properties.wording`` (accounts.tracker_consent records them).
CONSENT_EVENT = "Segment Consent Preference Updated"
CONSENT_CATEGORY = "tracking"
MAX_CONSENT_WORDING = 2000  # characters, as accounts.consent.MAX_WORDING


def consent_choice(event: dict) -> bool | None:
    """The tracking choice a stored consent event carries: True, False, or None (none of ours)."""
    if event.get("event") != CONSENT_EVENT:
        return None
    consent = (event.get("context") or {}).get("consent")
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    choice = preferences.get(CONSENT_CATEGORY) if isinstance(preferences, dict) else None
    return choice if isinstance(choice, bool) else None


def check_consent(event: dict, path: str) -> None:
    """Refuse a consent event whose tracking choice or wording could not be recorded.

    An event without a ``tracking`` category (another consent manager's categories) is stored as
    any event and records nothing.
    """
    consent = (event.get("context") or {}).get("consent")
    if consent is None:
        return
    if not isinstance(consent, dict):
        raise InvalidEvent(f"{path}.context.consent", "must be a JSON object")
    preferences = consent.get("categoryPreferences")
    where = f"{path}.context.consent.categoryPreferences"
    if preferences is not None and not isinstance(preferences, dict):
        raise InvalidEvent(where, "must be a JSON object")
    if not preferences or CONSENT_CATEGORY not in preferences:
        return
    if not isinstance(preferences[CONSENT_CATEGORY], bool):
        raise InvalidEvent(f"{where}.{CONSENT_CATEGORY}", "must be true or false")
    wording = (event.get("properties") or {}).get("wording")
    if wording is None:
        return
    field = f"{path}.properties.wording"
    if not isinstance(wording, str) or not wording.strip():
        raise InvalidEvent(field, "must be the words the visitor was shown: a non-empty string")
    if len(wording) > MAX_CONSENT_WORDING:
        raise InvalidEvent(
            field, f"at most {MAX_CONSENT_WORDING:,} characters (this one has {len(wording):,})"
        )
