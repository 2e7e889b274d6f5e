"""The one catalog of every customer-facing string of the tracking page, in en, fr, nl and zh.

Status names are keyed by ``schemas.statuses.STATUSES``; interface strings by a short name. Every
language has every key (``tests/consumers/tracking/test_i18n.py`` checks it).
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final[tuple[str, ...]] = ("en", "fr", "nl", "zh")
DEFAULT_LANGUAGE: Final = "en"

STATUS_NAMES: Final[dict[str, dict[str, str]]] = {
    "en": {
        "InfoReceived": "Info received",
        "InTransit": "In transit",
        "CustomsHold": "Held at customs",
        "OutForDelivery": "Out for delivery",
        "AttemptFail": "Delivery attempt failed",
        "AvailableForPickup": "Ready for pickup",
        "Delivered": "Delivered",
        "Exception": "Exception",
        "Expired": "Expired",
    },
    "fr": {
        "InfoReceived": "Informations reçues",
        "InTransit": "En transit",
        "CustomsHold": "Retenu en douane",
        "OutForDelivery": "En cours de livraison",
        "AttemptFail": "Échec de la livraison",
        "AvailableForPickup": "Disponible au point de retrait",
        "Delivered": "Livré",
        "Exception": "Incident",
        "Expired": "Expiré",
    },
    "nl": {
        "InfoReceived": "Informatie ontvangen",
        "InTransit": "Onderweg",
        "CustomsHold": "Tegengehouden door de douane",
        "OutForDelivery": "Wordt bezorgd",
        "AttemptFail": "Bezorgpoging mislukt",
        "AvailableForPickup": "Klaar om op te halen",
        "Delivered": "Bezorgd",
        "Exception": "Probleem",
        "Expired": "Verlopen",
    },
    "zh": {
        "InfoReceived": "已收到信息",
        "InTransit": "运输途中",
        "CustomsHold": "海关扣留",
        "OutForDelivery": "派送中",
        "AttemptFail": "投递失败",
        "AvailableForPickup": "待取件",
        "Delivered": "已签收",
        "Exception": "异常",
        "Expired": "已过期",
    },
}

STRINGS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "page_title": "Track your parcel",
        "tracking_number": "Tracking number",
        "status": "Status",
        "last_location": "Last known location",
        "estimated_delivery": "Estimated delivery",
        "on_time": "On time",
        "late": "Delayed",
        "history": "History",
        "no_history": "No scans yet",
        "loading": "Loading…",
        "not_found": "We could not find this parcel. Check the tracking number and your link.",
        "malformed": "This is not a valid tracking number.",
        "live": "Live updates",
        "reconnecting": "Reconnecting…",
        "unknown": "Unknown",
    },
    "fr": {
        "page_title": "Suivre votre colis",
        "tracking_number": "Numéro de suivi",
        "status": "Statut",
        "last_location": "Dernière position connue",
        "estimated_delivery": "Livraison estimée",
        "on_time": "À l'heure",
        "late": "En retard",
        "history": "Historique",
        "no_history": "Aucun scan pour l'instant",
        "loading": "Chargement…",
        "not_found": "Colis introuvable. Vérifiez le numéro de suivi et votre lien.",
        "malformed": "Ce numéro de suivi n'est pas valide.",
        "live": "Mises à jour en direct",
        "reconnecting": "Reconnexion…",
        "unknown": "Inconnu",
    },
    "nl": {
        "page_title": "Volg je pakket",
        "tracking_number": "Trackingnummer",
        "status": "Status",
        "last_location": "Laatst bekende locatie",
        "estimated_delivery": "Verwachte bezorging",
        "on_time": "Op tijd",
        "late": "Vertraagd",
        "history": "Geschiedenis",
        "no_history": "Nog geen scans",
        "loading": "Laden…",
        "not_found": "We konden dit pakket niet vinden. Controleer het trackingnummer en je link.",
        "malformed": "Dit is geen geldig trackingnummer.",
        "live": "Live-updates",
        "reconnecting": "Opnieuw verbinden…",
        "unknown": "Onbekend",
    },
    "zh": {
        "page_title": "包裹追踪",
        "tracking_number": "运单号",
        "status": "状态",
        "last_location": "最新位置",
        "estimated_delivery": "预计送达",
        "on_time": "准时",
        "late": "延误",
        "history": "物流轨迹",
        "no_history": "暂无扫描记录",
        "loading": "加载中…",
        "not_found": "未找到该包裹，请检查运单号和链接。",
        "malformed": "运单号格式无效。",
        "live": "实时更新",
        "reconnecting": "正在重新连接…",
        "unknown": "未知",
    },
}


def choose_language(requested: str | None, accept_language: str | None) -> str:
    """``?lang=`` if supported, else the best supported language of Accept-Language, else English."""
    if requested and requested.lower() in LANGUAGES:
        return requested.lower()
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, position, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def catalog(language: str) -> dict[str, dict[str, str]]:
    """Everything the page needs in one language."""
    return {"strings": STRINGS[language], "statuses": STATUS_NAMES[language]}
