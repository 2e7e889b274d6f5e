"""The page's translation catalog is complete and languages are chosen as documented."""

from __future__ import annotations

import pytest

from consumers.tracking.i18n import LANGUAGES, STATUS_NAMES, STRINGS, choose_language
from schemas.statuses import STATUSES


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_names_every_status_and_string(language: str) -> None:
    assert set(STATUS_NAMES[language]) == set(STATUSES)
    assert set(STRINGS[language]) == set(STRINGS["en"])
    assert all(text.strip() for text in [*STATUS_NAMES[language].values(), *STRINGS[language].values()])


def test_translations_differ_from_english() -> None:
    for language in LANGUAGES[1:]:
        assert STATUS_NAMES[language]["Delivered"] != STATUS_NAMES["en"]["Delivered"]
        assert STRINGS[language]["not_found"] != STRINGS["en"]["not_found"]


@pytest.mark.parametrize(
    ("requested", "accept_language", "chosen"),
    [
        ("fr", "zh-CN", "fr"),
        ("ZH", None, "zh"),
        ("de", "nl-BE,nl;q=0.9,en;q=0.8", "nl"),
        (None, "de-DE, en;q=0.3, zh;q=0.7", "zh"),
        (None, "fr;q=0, nl;q=0.1", "nl"),
        (None, "de, es", "en"),
        (None, "garbage;q=x", "en"),
        (None, None, "en"),
    ],
)
def test_language_choice(requested: str | None, accept_language: str | None, chosen: str) -> None:
    assert choose_language(requested, accept_language) == chosen
