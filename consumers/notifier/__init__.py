"""Customer notifications: StatusUpdates → durable Redis outbox → signed webhooks and localized e-mail.

Receivers verify webhooks with ``verify_signature`` (see docs/webhooks.md).
"""

from consumers.notifier.signing import SignatureError, signature_header, verify_signature

__all__ = ["SignatureError", "signature_header", "verify_signature"]
