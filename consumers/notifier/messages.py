"""Notification texts and the webhook payload of a status update.

The sentences are the tracking page's (``consumers/journey.py``): the step's message, its local
time and place, and the delivery line, in the subscription's language (en, fr, nl, de, zh).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from consumers.journey import DEFAULT_LANGUAGE, LANGUAGES, status_name, supported, update_text

_SUBJECT: Final = {
    "en": "Parcel {tracking_number}: {status}",
    "fr": "Colis {tracking_number} : {status}",
    "nl": "Pakket {tracking_number}: {status}",
    "de": "Paket {tracking_number}: {status}",
    "zh": "包裹 {tracking_number}：{status}",
}
_BODY: Final = {
    "en": "Your parcel {tracking_number}: {message}.\n{time}{place}\n{delivery}\n",
    "fr": "Votre colis {tracking_number} : {message}.\n{time}{place}\n{delivery}\n",
    "nl": "Uw pakket {tracking_number}: {message}.\n{time}{place}\n{delivery}\n",
    "de": "Ihr Paket {tracking_number}: {message}.\n{time}{place}\n{delivery}\n",
    "zh": "您的包裹 {tracking_number}：{message}。\n{time}{place}\n{delivery}\n",
}

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "email_text", "event_time_iso", "status_name", "webhook_payload"]


def event_time_iso(event_time_ms: int, utc_offset_minutes: int) -> str:
    """ISO 8601 time in the scan's local offset, e.g. ``2026-03-01T14:05:00+01:00``."""
    zone = timezone(timedelta(minutes=utc_offset_minutes)) if utc_offset_minutes else UTC
    return datetime.fromtimestamp(event_time_ms / 1000, tz=zone).isoformat(timespec="seconds")


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def _ms(day: str, offset_minutes: int) -> int:
    zone = timezone(timedelta(minutes=offset_minutes))
    return int(datetime.fromisoformat(day).replace(tzinfo=zone).timestamp() * 1000)


def webhook_payload(
    update: dict[str, Any], subscription_id: str, idempotency_key: str, language: str = DEFAULT_LANGUAGE
) -> dict[str, Any]:
    """The JSON body sent for one StatusUpdate to one subscription (also e-mail's source data);
    ``message`` and ``delivery`` are the tracking page's sentences in the subscription's language."""
    estimate = update.get("estimated_delivery")
    language = supported(language)
    text = update_text(update, language)
    return {
        "event": "tracking.status_changed",
        "idempotency_key": idempotency_key,
        "subscription_id": subscription_id,
        "update_id": update["update_id"],
        "tracking_number": update["tracking_number"],
        "merchant": update.get("merchant"),
        "sequence": update["sequence"],
        "status": update["status"],
        "sub_status": update["sub_status"],
        "previous_status": update.get("previous_status"),
        "event_time": event_time_iso(update["event_time_ms"], update.get("utc_offset_minutes", 0)),
        "location": dict(update["location"]) if update.get("location") else None,
        "estimated_delivery": (
            {
                "earliest": _date(estimate["earliest_ms"]),
                "latest": _date(estimate["latest_ms"]),
                "promised": _date(estimate["promised_ms"]) if estimate.get("promised_ms") is not None else None,
            }
            if estimate
            else None
        ),
        "on_time": update.get("on_time", True),
        "carrier": update.get("carrier"),
        "movement": dict(update["movement"]) if update.get("movement") else None,
        "language": language,
        "message": text.message,
        "delivery": text.delivery,
    }


def email_text(payload: dict[str, Any], language: str) -> tuple[str, str]:
    """Subject and plain-text body of the e-mail for one notification payload, in ``language``."""
    language = supported(language)
    moment = datetime.fromisoformat(payload["event_time"])
    offset = int((moment.utcoffset() or timedelta()).total_seconds() // 60)
    estimate = payload.get("estimated_delivery")
    update = {
        **payload,
        "event_time_ms": int(moment.timestamp() * 1000),
        "utc_offset_minutes": offset,
        # The payload carries dates (UTC); at midnight in the scan's offset they read as the same dates.
        "estimated_delivery": (
            {"earliest_ms": _ms(estimate["earliest"], offset), "latest_ms": _ms(estimate["latest"], offset)}
            if estimate
            else None
        ),
    }
    text = update_text(update, language)
    fields = {"tracking_number": payload["tracking_number"], "status": status_name(payload["status"], language)}
    subject = _SUBJECT[language].format(**fields)
    place = f" · {text.place}" if text.place else ""
    body = _BODY[language].format(
        tracking_number=payload["tracking_number"],
        message=text.message,
        time=text.time,
        place=place,
        delivery=text.delivery,
    )
    return subject, body


SAMPLE_UPDATE: Final[dict[str, Any]] = {
    "update_id": "sample-update-0001",
    "tracking_number": "LP00123456789CN",
    "status": "InTransit",
    "sub_status": "arrived_at_destination",
    "previous_status": "InfoReceived",
    "event_id": "sample-scan-0001",
    "event_time_ms": 1_790_000_000_000,
    "utc_offset_minutes": 60,
    "location": {"code": "LGG", "kind": "airport", "country": "BE", "name": "Liège Airport"},
    "estimated_delivery": {"earliest_ms": 1_790_200_000_000, "latest_ms": 1_790_400_000_000, "promised_ms": None},
    "on_time": True,
    "carrier": "CK",
    "route": "HGH-LGG",
    "merchant": "sample-merchant",
    "sequence": 1,
}
