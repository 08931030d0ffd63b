"""Password hashing with argon2id (argon2-cffi), and the rules a new password must meet.

The hasher is chosen once per process by :func:`use_profile` (the app does it from its
configuration): RFC 9106's low-memory profile in production, argon2-cffi's cheapest argon2id
parameters in tests so the suite stays fast. A stored hash made with other parameters still
verifies, and :func:`verify` hands back a new hash so the caller can store it (rehash on sign-in).
"""

from __future__ import annotations

import argon2
from argon2 import PasswordHasher, profiles

MIN_LENGTH = 10
MAX_LENGTH = 1000  # characters; argon2 takes any length, but a megabyte "password" is an attack

PROFILES = {
    "RFC_9106_LOW_MEMORY": profiles.RFC_9106_LOW_MEMORY,
    "RFC_9106_HIGH_MEMORY": profiles.RFC_9106_HIGH_MEMORY,
    "CHEAPEST": profiles.CHEAPEST,  # tests only
}
DEFAULT_PROFILE = "RFC_9106_LOW_MEMORY"

_profile = DEFAULT_PROFILE
_hasher = PasswordHasher.from_parameters(PROFILES[DEFAULT_PROFILE])
_dummy_hash: str | None = None  # made on first use (hashing costs ~0.1 s: not at import)


def use_profile(name: str) -> None:
    """Hash new passwords with the named argon2id profile (a key of :data:`PROFILES`)."""
    global _profile, _hasher, _dummy_hash
    if name != _profile:
        _profile, _hasher, _dummy_hash = name, PasswordHasher.from_parameters(PROFILES[name]), None


def _dummy() -> str:
    """A hash of nothing anyone knows: checked for unknown accounts, costing a real check."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not a password of anyone")
    return _dummy_hash


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` with the current profile's parameters."""
    return _hasher.hash(password)


def verify(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """(matches, new hash to store when the parameters changed, else None).

    Without a hash (unknown account, no password set yet) the dummy hash is checked instead,
    so the answer takes the same time and is always "no".
    """
    try:
        _hasher.verify(password_hash or _dummy(), password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False, None
    if password_hash is None:
        return False, None
    if _hasher.check_needs_rehash(password_hash):
        return True, _hasher.hash(password)
    return True, None


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be used, or None when it can."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    if "\x00" in password:
        return "a password cannot hold a NUL character"
    return None
