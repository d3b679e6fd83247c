"""Redaction rules: drop, keyed hash (joins still work), mask; validation; scrubbing of error text."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from modelport.core.errors import ConfigError
from modelport.runtime.redaction import MASK, Redactor, canonical_text, validate_rules

KEY = "a-long-random-secret-key"


def test_drop_hash_mask() -> None:
    redactor = Redactor(key=KEY, default_rules={"ssn": "drop", "email": "hash", "name": "mask"})
    out = redactor.redact_values("churn", {"ssn": "123-45-6789", "email": "a@b.c", "name": "Alice", "age": 31})
    assert "ssn" not in out
    assert out["name"] == MASK
    assert out["age"] == 31
    assert out["email"] == redactor.hash_value("a@b.c")
    assert len(out["email"]) == 64
    assert out["email"] != hashlib.sha256(b"a@b.c").hexdigest()  # keyed, not a plain (guessable) hash


def test_missing_values_stay_missing() -> None:
    redactor = Redactor(key=KEY, default_rules={"email": "hash", "name": "mask"})
    out = redactor.redact_values("m", {"email": None, "name": float("nan")})
    assert out == {"email": None, "name": None}


def test_hash_is_deterministic_canonical_and_keyed() -> None:
    one, other = Redactor(key=KEY), Redactor(key=KEY + "-other")
    assert one.hash_value("x") == one.hash_value("x")
    assert one.hash_value("x") != other.hash_value("x")
    assert one.hash_value(5) == one.hash_value(5.0) == one.hash_value("5") == one.hash_value(np.int64(5))
    assert one.hash_value(True) == one.hash_value("true")
    assert canonical_text([1, 2]) == "[1,2]"
    assert canonical_text(np.array([1.5])) == "[1.5]"
    assert canonical_text(2.5) == "2.5"


def test_model_rules_override_defaults() -> None:
    redactor = Redactor(key=KEY, default_rules={"email": "hash"}, rules={"crm": {"email": "drop"}})
    assert redactor.rules_for("crm") == {"email": "drop"}
    assert redactor.rules_for("other") == {"email": "hash"}
    redactor.set_rules("other", {"phone": "mask"})
    assert redactor.rules_for("other") == {"email": "hash", "phone": "mask"}
    assert redactor.is_active("other")
    assert not Redactor().is_active("x")


def test_values_without_redacted_columns_are_copied_unchanged() -> None:
    redactor = Redactor(default_rules={"ssn": "drop"})
    values = {"age": 3}
    out = redactor.redact_values("m", values)
    assert out == values
    assert out is not values


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"default_rules": {"email": "encrypt"}}, r"unknown action 'encrypt' for column 'email'"),
        ({"default_rules": {"email": "hash"}}, r"'hash' needs a secret key"),
        ({"key": "short", "default_rules": {"email": "hash"}}, r"at least 16 bytes"),
        ({"rules": {"m": {"": "drop"}}}, r"column name '' is not a non-empty string"),
    ],
)
def test_invalid_rules_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Redactor(**kwargs)  # type: ignore[arg-type]
    assert info.value.hint


def test_hash_value_without_key() -> None:
    with pytest.raises(ConfigError, match="No redaction key"):
        Redactor().hash_value("x")


def test_validate_rules_returns_checked_rules() -> None:
    assert validate_rules({"a": "drop", "b": "mask"}) == {"a": "drop", "b": "mask"}


def test_scrub_text_removes_raw_values_of_redacted_columns() -> None:
    redactor = Redactor(key=KEY, default_rules={"email": "hash"})
    long_value = "x" * 80 + "@example.com"
    text = f"column 'email': expected string, got str ('alice@example.com') at row 0; also {long_value!r:.57}..."
    scrubbed = redactor.scrub_text("m", text, {"email": "alice@example.com", "age": 31}, {"email": long_value})
    assert "alice@example.com" not in scrubbed
    assert "x" * 40 not in scrubbed
    assert "column 'email'" in scrubbed
    assert redactor.scrub_text("m", "nothing", None) == "nothing"
    assert Redactor().scrub_text("m", "alice", {"email": "alice"}) == "alice"
