"""API key format: `msk_<key id>_<secret>`; only a keyed hash of the secret is ever stored."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "msk"
KEY_ID_BYTES = 6
SECRET_BYTES = 32


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    plaintext: str
    secret_hash: str


def issue_key(pepper: bytes) -> IssuedKey:
    """A new random key (shown to its owner once) and the hash to store."""
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return IssuedKey(key_id, f"{PREFIX}_{key_id}_{secret}", hash_secret(pepper, secret))


def hash_secret(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def split_key(plaintext: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    prefix, _, rest = plaintext.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != PREFIX or len(key_id) != 2 * KEY_ID_BYTES or not secret:
        return None
    return key_id, secret


def secret_matches(pepper: bytes, secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(pepper, secret), stored_hash)
