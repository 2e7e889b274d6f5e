"""Signed tracking links: a token is HMAC-SHA256 over the tracking number with the server secret.

Whoever holds the link may follow that one parcel (as with a postcode look-up); tokens do not expire,
since they are sent in notifications. Rotating ``PARCELSTREAM_TRACKING_SECRET`` revokes every link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote, urlencode

_PURPOSE = b"parcelstream-tracking-link-v1\x00"


def mint_token(secret: str, tracking_number: str) -> str:
    """The link token for a normalised tracking number (URL-safe base64, no padding)."""
    if not secret:
        raise ValueError("no tracking secret configured: set PARCELSTREAM_TRACKING_SECRET")
    digest = hmac.new(secret.encode(), _PURPOSE + tracking_number.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify_token(secret: str, tracking_number: str, token: str) -> bool:
    """Constant-time check; always False when no secret is configured."""
    if not secret:
        return False
    return hmac.compare_digest(mint_token(secret, tracking_number).encode(), token.encode())


def tracking_link(base_url: str, secret: str, tracking_number: str, lang: str | None = None) -> str:
    """The customer's tracking page URL for a normalised tracking number."""
    query = {"token": mint_token(secret, tracking_number)}
    if lang:
        query["lang"] = lang
    return f"{base_url.rstrip('/')}/track/{quote(tracking_number, safe='')}?{urlencode(query)}"
