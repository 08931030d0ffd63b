"""Identity verification: which user ids the store may believe.

The write key is public, so a user id sent from a browser is a claim. The shop's server vouches
for it by signing it (as Intercom's identity verification does): ``user_hash`` is the hex
HMAC-SHA256 of the user id (UTF-8) keyed with the site's identity secret. The collector marks
every accepted event with :data:`VERIFIED` (server-key events and sites that turned verification
off are trusted; browser events need a valid ``context.userHash``); the store then keeps an
unverified event's user id as a claim only (:func:`distrust`), so it links no identity, overwrites
no trait and counts in no customer's history.

Events written into the stream by the server itself (the demo loader, tests) carry no marker and
are trusted: only the collector hears clients, and it always sets the marker.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

VERIFIED = "verified"  # the marker the collector sets on every accepted event
CLAIMED = "claimedUserId"  # where an unverified event keeps the user id it claimed
UNVERIFIED_PREFIX = "unverified:"  # the visitor of an unverified event without anonymousId
MAX_ID_LENGTH = 255


def user_hash(secret: str, user_id: str) -> str:
    """The signature a shop's server computes: hex HMAC-SHA256 of the user id with the secret."""
    return hmac.new(secret.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()


def verify(secret: str | None, user_id: Any, signature: Any) -> bool:
    """True when ``signature`` is the user id's hash under ``secret`` (constant-time compare)."""
    if not secret or user_id is None or not isinstance(signature, str) or not signature:
        return False
    expected = user_hash(secret, str(user_id))
    # compare_digest needs ASCII for str: compare bytes so a non-ASCII signature is just wrong.
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


class Verifier:
    """Marks the events of one request: trusted wholesale, or each by its ``context.userHash``."""

    def __init__(self, *, trusted: bool, secret: str | None):
        self.trusted, self.secret = trusted, secret

    def mark(self, event: dict[str, Any]) -> None:
        """Set the marker (whatever the client sent in its place) and strip ``userHash``."""
        context = event.get("context")
        signature = context.pop("userHash", None) if isinstance(context, dict) else None
        event.pop(CLAIMED, None)  # only the store names a claim
        if self.trusted:
            event[VERIFIED] = True
        else:
            event[VERIFIED] = verify(self.secret, event.get("userId"), signature)


def is_verified(event: dict[str, Any]) -> bool:
    """False only for events the collector marked unverified (no marker: server-side, trusted)."""
    return event.get(VERIFIED) is not False


def distrust(event: dict[str, Any]) -> None:
    """Turn an unverified event's user id into a claim, so the store treats it as anonymous.

    The claim moves to :data:`CLAIMED` (kept in the stored payload, and used for unverified
    traits); an event that had only the user id gets a visitor id of its own, so its interactions
    count for a visitor nobody else is, never for the customer it named.
    """
    if is_verified(event) or event.get("userId") is None:
        return
    claimed = event.pop("userId")
    event[CLAIMED] = claimed
    if event["type"] == "alias":
        return  # an unverified alias links nothing, and has no visitor of its own
    if not event.get("anonymousId"):
        event["anonymousId"] = (UNVERIFIED_PREFIX + str(claimed))[:MAX_ID_LENGTH]
