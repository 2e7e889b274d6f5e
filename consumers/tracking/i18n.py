"""The tracking page's own strings in en, fr, nl, de and zh, and how a language is chosen.

What the page says about a parcel (status names, each step's message, the milestone bar, the
delivery line) comes from ``consumers/journey.py``, shared with the notifier. Every language has
every key (``tests/consumers/tracking/test_i18n.py`` checks it).
"""

from __future__ import annotations

from typing import Final

from consumers.journey import DEFAULT_LANGUAGE, LANGUAGES

#: The language switcher's labels: each language by its own name.
LANGUAGE_NAMES: Final[dict[str, str]] = {
    "en": "English",
    "fr": "Français",
    "nl": "Nederlands",
    "de": "Deutsch",
    "zh": "中文",
}
#: The cookie that remembers a language chosen with ``?lang=``.
LANGUAGE_COOKIE: Final = "parcelstream_lang"

STRINGS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "page_title": "Track your parcel",
        "tracking_number": "Tracking number",
        "status": "Status",
        "delivery": "Delivery",
        "journey": "Journey",
        "history": "What happened",
        "what_you_can_do": "What you can do:",
        "done": "done",
        "current": "current step",
        "no_history": "No scans yet",
        "not_found": "We could not find this parcel. Check the tracking number and your link.",
        "malformed": "This is not a valid tracking number.",
        "language": "Language",
        "live": "Live updates",
        "reconnecting": "Reconnecting…",
        "updated": "Updated",
    },
    "fr": {
        "page_title": "Suivre votre colis",
        "tracking_number": "Numéro de suivi",
        "status": "Statut",
        "delivery": "Livraison",
        "journey": "Parcours",
        "history": "Étapes",
        "what_you_can_do": "Que faire :",
        "done": "terminé",
        "current": "étape actuelle",
        "no_history": "Aucun scan pour l'instant",
        "not_found": "Colis introuvable. Vérifiez le numéro de suivi et votre lien.",
        "malformed": "Ce numéro de suivi n'est pas valide.",
        "language": "Langue",
        "live": "Mises à jour en direct",
        "reconnecting": "Reconnexion…",
        "updated": "Mis à jour",
    },
    "nl": {
        "page_title": "Volg je pakket",
        "tracking_number": "Trackingnummer",
        "status": "Status",
        "delivery": "Bezorging",
        "journey": "Traject",
        "history": "Wat er gebeurde",
        "what_you_can_do": "Wat je kunt doen:",
        "done": "klaar",
        "current": "huidige stap",
        "no_history": "Nog geen scans",
        "not_found": "We konden dit pakket niet vinden. Controleer het trackingnummer en je link.",
        "malformed": "Dit is geen geldig trackingnummer.",
        "language": "Taal",
        "live": "Live-updates",
        "reconnecting": "Opnieuw verbinden…",
        "updated": "Bijgewerkt",
    },
    "de": {
        "page_title": "Sendung verfolgen",
        "tracking_number": "Sendungsnummer",
        "status": "Status",
        "delivery": "Zustellung",
        "journey": "Sendungsverlauf",
        "history": "Was passiert ist",
        "what_you_can_do": "Was Sie tun können:",
        "done": "erledigt",
        "current": "aktueller Schritt",
        "no_history": "Noch keine Scans",
        "not_found": "Wir konnten diese Sendung nicht finden. Prüfen Sie die Sendungsnummer und Ihren Link.",
        "malformed": "Dies ist keine gültige Sendungsnummer.",
        "language": "Sprache",
        "live": "Live-Aktualisierung",
        "reconnecting": "Verbindung wird wiederhergestellt…",
        "updated": "Aktualisiert",
    },
    "zh": {
        "page_title": "包裹追踪",
        "tracking_number": "运单号",
        "status": "状态",
        "delivery": "派送",
        "journey": "运输进度",
        "history": "物流轨迹",
        "what_you_can_do": "您可以：",
        "done": "已完成",
        "current": "当前步骤",
        "no_history": "暂无扫描记录",
        "not_found": "未找到该包裹，请检查运单号和链接。",
        "malformed": "运单号格式无效。",
        "language": "语言",
        "live": "实时更新",
        "reconnecting": "正在重新连接…",
        "updated": "已更新",
    },
}


def choose_language(requested: str | None, accept_language: str | None, remembered: str | None = None) -> str:
    """``?lang=`` if supported, else the remembered choice (cookie), else the best supported language
    of Accept-Language, else English."""
    for choice in (requested, remembered):
        if choice and choice.lower() in LANGUAGES:
            return choice.lower()
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
