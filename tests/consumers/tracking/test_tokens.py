"""Signed tracking links, and the ``tracking-link`` command that prints them."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest

from consumers.tracking.tokens import mint_token, tracking_link, verify_token


def test_a_token_verifies_only_for_its_parcel_and_secret() -> None:
    token = mint_token("secret-1", "LX123456785CN")
    assert verify_token("secret-1", "LX123456785CN", token)
    assert not verify_token("secret-1", "LX123456786CN", token)
    assert not verify_token("secret-2", "LX123456785CN", token)
    assert not verify_token("", "LX123456785CN", token)
    assert not verify_token("secret-1", "LX123456785CN", token[:-1])
    with pytest.raises(ValueError, match="PARCELSTREAM_TRACKING_SECRET"):
        mint_token("", "LX123456785CN")


def test_tracking_link_command_prints_a_verifiable_link() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consumers", "tracking-link", "lx123456785cn", "--lang", "zh"],
        env={"PARCELSTREAM_TRACKING_SECRET": "cli-secret", "PARCELSTREAM_TRACKING_BASE_URL": "https://track.example"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    link = urlsplit(result.stdout.strip())
    assert link.path == "/track/LX123456785CN"
    query = parse_qs(link.query)
    assert query["lang"] == ["zh"]
    assert verify_token("cli-secret", "LX123456785CN", query["token"][0])
    assert result.stdout.strip() == tracking_link("https://track.example", "cli-secret", "LX123456785CN", "zh")


def test_tracking_link_command_explains_a_bad_tracking_number_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "consumers", "tracking-link", "<bad>", "--secret", "s"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "8 to 40 letters" in result.stderr
    assert "Traceback" not in result.stderr
