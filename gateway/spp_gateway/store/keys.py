"""API key format.

A key reads ``spp_<id>_<secret>``: ``id`` is 12 lower-case base32 characters
(public: it names the key in lists, logs and the audit trail), ``secret`` is
``secrets.token_urlsafe(32)``, 43 characters carrying 256 random bits. The
database keeps sha256 of the whole key and never the key: with 256 random
bits there is nothing to guess, so a fast hash is enough (a slow KDF guards
human passwords, and would cost every request a millisecond for nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "spp_"
ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower-case
ID_LENGTH = 12
SECRET_LENGTH = 43  # len(secrets.token_urlsafe(32))
KEY_LENGTH = len(KEY_PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH
_KEY_RE = re.compile(rf"spp_([a-z2-7]{{{ID_LENGTH}}})_[A-Za-z0-9_-]{{{SECRET_LENGTH}}}")
_ID_RE = re.compile(rf"[a-z2-7]{{{ID_LENGTH}}}")


def new_key_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def new_key(key_id: str) -> str:
    """A whole key (id and a fresh secret): shown once, then only its digest exists."""
    return f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_prefix(key_id: str) -> str:
    """The non-secret start of a key, ``spp_<id>``, shown in lists."""
    return KEY_PREFIX + key_id


def parse_key(text: str) -> tuple[str, str] | None:
    """``(key_id, whole key)`` if ``text`` has the shape of a key, else None.

    Runs on every request presenting a bearer token, before any database
    read: a length test first, then one anchored regex. Nothing else (no
    surrounding spaces, no other prefix) passes, so a JWT or a bootstrap
    token is told apart at once.
    """
    if len(text) != KEY_LENGTH:
        return None
    match = _KEY_RE.fullmatch(text)
    return (match.group(1), text) if match is not None else None


def is_key_id(text: str) -> bool:
    """Whether ``text`` has the shape of a key id (what the admin API names keys by)."""
    return _ID_RE.fullmatch(text) is not None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def key_matches(stored_hash: str, key: str) -> bool:
    # Constant time: how much of a digest matched must not show in the timing.
    return hmac.compare_digest(stored_hash, hash_key(key))
