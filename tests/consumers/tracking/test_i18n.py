"""The page's own strings are complete and languages are chosen as documented."""

from __future__ import annotations

import pytest

from consumers.journey import LANGUAGES
from consumers.tracking.i18n import LANGUAGE_NAMES, STRINGS, choose_language


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_every_string(language: str) -> None:
    assert set(STRINGS[language]) == set(STRINGS["en"])
    assert all(text.strip() for text in STRINGS[language].values())
    assert set(LANGUAGE_NAMES) == set(LANGUAGES)


def test_translations_differ_from_english() -> None:
    for language in LANGUAGES[1:]:
        assert STRINGS[language]["not_found"] != STRINGS["en"]["not_found"]


@pytest.mark.parametrize(
    ("requested", "accept_language", "remembered", "chosen"),
    [
        ("fr", "zh-CN", "nl", "fr"),
        ("ZH", None, None, "zh"),
        ("es", "nl-BE,nl;q=0.9,en;q=0.8", None, "nl"),
        (None, "de-DE, en;q=0.3, zh;q=0.7", None, "de"),
        (None, "es-ES, en;q=0.3, zh;q=0.7", None, "zh"),
        (None, "de-DE", "fr", "fr"),
        (None, "de-DE", "xx", "de"),
        (None, "fr;q=0, nl;q=0.1", None, "nl"),
        (None, "es, it", None, "en"),
        (None, "garbage;q=x", None, "en"),
        (None, None, None, "en"),
    ],
)
def test_language_choice(
    requested: str | None, accept_language: str | None, remembered: str | None, chosen: str
) -> None:
    assert choose_language(requested, accept_language, remembered) == chosen
