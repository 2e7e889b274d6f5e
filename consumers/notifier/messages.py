"""Localized notification texts (en, fr, nl, zh) and the webhook payload of a status update.

Status names come from the one catalog, ``consumers/tracking/i18n.py`` (shared with the tracking
page); this module only adds the e-mail sentences around them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from consumers.tracking.i18n import DEFAULT_LANGUAGE, LANGUAGES, STATUS_NAMES

_SUBJECT: Final = {
    "en": "Parcel {tracking_number}: {status}",
    "fr": "Colis {tracking_number} : {status}",
    "nl": "Pakket {tracking_number}: {status}",
    "zh": "包裹 {tracking_number}：{status}",
}
_BODY: Final = {
    "en": "Your parcel {tracking_number} has a new status: {status}.\nUpdated: {event_time}{location}\n",
    "fr": "Votre colis {tracking_number} a un nouveau statut : {status}.\nMis à jour : {event_time}{location}\n",
    "nl": "Uw pakket {tracking_number} heeft een nieuwe status: {status}.\nBijgewerkt: {event_time}{location}\n",
    "zh": "您的包裹 {tracking_number} 状态已更新：{status}。\n更新时间：{event_time}{location}\n",
}
_LOCATION: Final = {"en": "\nLocation: {}", "fr": "\nLieu : {}", "nl": "\nLocatie: {}", "zh": "\n位置：{}"}
_ESTIMATE: Final = {
    "en": "\nEstimated delivery: {} – {}",
    "fr": "\nLivraison estimée : {} – {}",
    "nl": "\nVerwachte bezorging: {} – {}",
    "zh": "\n预计送达：{} – {}",
}


def status_name(status: str, language: str) -> str:
    """The customer-facing name of a status; unknown statuses keep their code."""
    return STATUS_NAMES.get(language, STATUS_NAMES[DEFAULT_LANGUAGE]).get(status, status)


def event_time_iso(event_time_ms: int, utc_offset_minutes: int) -> str:
    """ISO 8601 time in the scan's local offset, e.g. ``2026-03-01T14:05:00+01:00``."""
    zone = timezone(timedelta(minutes=utc_offset_minutes)) if utc_offset_minutes else UTC
    return datetime.fromtimestamp(event_time_ms / 1000, tz=zone).isoformat(timespec="seconds")


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()


def webhook_payload(update: dict[str, Any], subscription_id: str, idempotency_key: str) -> dict[str, Any]:
    """The JSON body sent for one StatusUpdate to one subscription (also e-mail's source data)."""
    estimate = update.get("estimated_delivery")
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
    }


def email_text(payload: dict[str, Any], language: str) -> tuple[str, str]:
    """Subject and plain-text body of the e-mail for one notification payload."""
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    status = status_name(payload["status"], language)
    location = payload.get("location")
    location_line = ""
    if location:
        place = location.get("name") or location.get("code")
        location_line = _LOCATION[language].format(place)
    estimate = payload.get("estimated_delivery")
    if estimate:
        location_line += _ESTIMATE[language].format(estimate["earliest"], estimate["latest"])
    fields = {"tracking_number": payload["tracking_number"], "status": status}
    subject = _SUBJECT[language].format(**fields)
    body = _BODY[language].format(**fields, event_time=payload["event_time"], location=location_line)
    return subject, body


SAMPLE_UPDATE: Final[dict[str, Any]] = {
    "update_id": "sample-update-0001",
    "tracking_number": "LP00123456789CN",
    "status": "InTransit",
    "sub_status": "InTransit_Arrived",
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
