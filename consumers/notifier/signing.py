"""Webhook signatures: ``X-Parcelstream-Signature: t=<ts>,v1=<base64 HMAC-SHA256(secret, "<ts>.<body>")>``.

Pure functions, shared by the sender and by receivers (and tests). The timestamp is signed with the
body, so a receiver that rejects old timestamps (``tolerance``, 5 minutes by default) cannot be
fooled by a replayed request. See docs/webhooks.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

TIMESTAMP_HEADER: Final = "X-Parcelstream-Timestamp"
SIGNATURE_HEADER: Final = "X-Parcelstream-Signature"
IDEMPOTENCY_HEADER: Final = "X-Parcelstream-Idempotency-Key"
DEFAULT_TOLERANCE_S: Final = 300


class SignatureError(ValueError):
    """The request is not signed with the expected secret, or is too old (replay)."""


def compute_signature(secret: str, body: bytes, timestamp: int) -> str:
    """Base64 HMAC-SHA256 of ``f"{timestamp}.{body}"`` with the subscriber's secret."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    return f"t={timestamp},v1={compute_signature(secret, body, timestamp)}"


def verify_signature(secret: str, body: bytes, header: str, now: float, tolerance: float = DEFAULT_TOLERANCE_S) -> int:
    """Check a ``X-Parcelstream-Signature`` header against the raw body; return its timestamp.

    Raises ``SignatureError`` when the header is malformed, no ``v1`` signature matches, or the
    timestamp is more than ``tolerance`` seconds away from ``now`` (Unix seconds).
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError(f"timestamp {value!r} is not an integer") from None
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("signature header needs t=<timestamp> and v1=<signature>")
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp {timestamp} is {now - timestamp:.0f} s from now (tolerance {tolerance:.0f} s)")
    expected = compute_signature(secret, body, timestamp)
    # Several v1 values let a sender sign with an old and a new secret while rotating.
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("no v1 signature matches the body and secret")
    return timestamp
