"""The API key scheme shared by carriers' ingest keys and merchants' subscription keys."""

from __future__ import annotations

import hashlib

import pytest

from schemas.api_keys import CARRIER_KEYS, MERCHANT_KEYS, KeyScheme, secret_hash, secret_matches


@pytest.mark.parametrize("scheme", [CARRIER_KEYS, MERCHANT_KEYS], ids=lambda scheme: scheme.name)
def test_generated_keys_are_random_and_carry_their_id(scheme: KeyScheme) -> None:
    first, second = scheme.generate(), scheme.generate()
    assert first != second
    key_id, secret, key = first
    assert key == f"{scheme.name}_{key_id}_{secret}"
    assert len(key_id) == 16 and len(secret) >= 40  # 64 bits of id, 256 bits of secret
    assert scheme.split(key) == (key_id, secret)
    assert scheme.split(f"{scheme.name}_short_secret") is None
    assert scheme.split(f"Bearer {key}") is None
    assert scheme.split(f"{key}\n") is None


def test_a_carrier_key_is_not_a_merchant_key() -> None:
    _key_id, _secret, carrier_key = CARRIER_KEYS.generate()
    _key_id, _secret, merchant_key = MERCHANT_KEYS.generate()
    assert CARRIER_KEYS.split(carrier_key) is not None and MERCHANT_KEYS.split(carrier_key) is None
    assert MERCHANT_KEYS.split(merchant_key) is not None and CARRIER_KEYS.split(merchant_key) is None


def test_secrets_match_only_their_own_hash() -> None:
    stored = secret_hash("right-secret")
    assert stored == hashlib.sha256(b"right-secret").hexdigest()
    assert secret_matches("right-secret", stored)
    assert not secret_matches("wrong-secret", stored)
    assert not secret_matches("right-secret", None)  # an unknown key id
    assert not secret_matches("", None)
