from __future__ import annotations

import pytest

from consumers.notifier import SignatureError, signature_header, verify_signature
from consumers.notifier.signing import compute_signature

BODY = b'{"update_id":"LP1-1","status":"Delivered"}'
NOW = 1_790_000_000


def test_a_signed_body_verifies_and_returns_its_timestamp() -> None:
    header = signature_header("s3cret", BODY, NOW)
    assert verify_signature("s3cret", BODY, header, now=NOW + 10, tolerance=300) == NOW


def test_wrong_secret_is_rejected() -> None:
    header = signature_header("s3cret", BODY, NOW)
    with pytest.raises(SignatureError, match="no v1 signature matches"):
        verify_signature("other-secret", BODY, header, now=NOW, tolerance=300)


def test_tampered_body_is_rejected() -> None:
    header = signature_header("s3cret", BODY, NOW)
    with pytest.raises(SignatureError):
        verify_signature("s3cret", BODY.replace(b"Delivered", b"Exception"), header, now=NOW)


def test_old_timestamp_is_rejected_even_with_a_valid_signature() -> None:
    header = signature_header("s3cret", BODY, NOW - 301)
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature("s3cret", BODY, header, now=NOW, tolerance=300)


def test_signature_binds_the_timestamp() -> None:
    # Replaying an old signature with a fresh t= must fail.
    old_signature = compute_signature("s3cret", BODY, NOW - 3600)
    with pytest.raises(SignatureError):
        verify_signature("s3cret", BODY, f"t={NOW},v1={old_signature}", now=NOW)


def test_any_of_several_signatures_may_match_during_secret_rotation() -> None:
    header = f"t={NOW},v1={compute_signature('old', BODY, NOW)},v1={compute_signature('new', BODY, NOW)}"
    assert verify_signature("new", BODY, header, now=NOW) == NOW


@pytest.mark.parametrize("header", ["", "v1=abc", f"t={NOW}", "t=yesterday,v1=abc"])
def test_malformed_headers_are_rejected(header: str) -> None:
    with pytest.raises(SignatureError):
        verify_signature("s3cret", BODY, header, now=NOW)


def test_the_verification_snippet_in_the_docs_agrees() -> None:
    import re
    import time
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[3] / "docs" / "webhooks.md").read_text()
    namespace: dict[str, object] = {}
    exec(re.search(r"```python\n(.*?)```", docs, re.S).group(1), namespace)  # type: ignore[union-attr]
    verify = namespace["verify"]
    now = int(time.time())
    assert verify("s3cret", BODY, signature_header("s3cret", BODY, now))  # type: ignore[operator]
    assert not verify("wrong", BODY, signature_header("s3cret", BODY, now))  # type: ignore[operator]
    assert not verify("s3cret", BODY, signature_header("s3cret", BODY, now - 301))  # type: ignore[operator]
