"""Redaction of prediction-log records: per-model column rules applied before anything is queued.

Three actions, named per column (in the bundle's ``redaction`` table or the server configuration):

* ``drop`` removes the value: the column is absent from the logged record.
* ``hash`` replaces it with ``HMAC-SHA256(key, value)`` in hex. The key is a secret from the
  operator's configuration, so nobody can confirm a guess (a plain hash of an e-mail address can
  be reversed by hashing candidates), while equal values still hash equally: joins and counts of
  distinct values keep working. Values are canonicalised first (``5``, ``5.0`` and ``"5"`` hash
  alike; ``True`` as ``"true"``).
* ``mask`` replaces a present value with ``"***"`` and keeps a missing one missing, so the
  missing rate can still be monitored.

Rules apply to input columns and to outputs of the same name. Error messages of a record are
scrubbed too: every raw value of a redacted column is replaced by ``***`` wherever it occurs in
the text (coercion errors quote the offending value).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
from collections.abc import Mapping
from typing import Any, cast, get_args

import numpy as np

from modelport.bundle.manifest import RedactionAction
from modelport.core.errors import ConfigError

MASK = "***"
MIN_KEY_BYTES = 16
ACTIONS: tuple[str, ...] = get_args(RedactionAction)


def validate_rules(rules: Mapping[str, str], *, where: str = "redaction rules") -> dict[str, RedactionAction]:
    """``rules`` checked: column name → one of ``drop``, ``hash``, ``mask``.

    Raises:
        ConfigError: An action is unknown or a column name is not a non-empty string.
    """
    checked: dict[str, RedactionAction] = {}
    for column, action in rules.items():
        if not isinstance(column, str) or not column:
            raise ConfigError(f"{where}: column name {column!r} is not a non-empty string.", hint="Name the column.")
        if action not in ACTIONS:
            raise ConfigError(
                f"{where}: unknown action {action!r} for column {column!r}.",
                hint=f"Use one of: {', '.join(ACTIONS)}.",
            )
        checked[column] = cast(RedactionAction, action)
    return checked


def canonical_text(value: Any) -> str:
    """The text a value is hashed as: equal-looking values of different types hash alike."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


class Redactor:
    """Applies per-model redaction rules; held by the prediction-log writer (never global).

    Args:
        key: Secret key for ``hash`` (at least 16 bytes); required as soon as a rule hashes.
        default_rules: Rules for every model (e.g. from the server configuration).
        rules: Model name → rules (e.g. from each bundle's manifest); a model's rule overrides the
            default for the same column.

    Raises:
        ConfigError: An unknown action, or a ``hash`` rule without a long enough key.

    Example:
        >>> r = Redactor(key="0123456789abcdef-secret", default_rules={"email": "hash", "ssn": "drop"})
        >>> sorted(r.redact_values("churn", {"email": "a@b.c", "ssn": "123", "age": 31}))
        ['age', 'email']
    """

    def __init__(
        self,
        *,
        key: bytes | str | None = None,
        default_rules: Mapping[str, str] | None = None,
        rules: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._key = key.encode("utf-8") if isinstance(key, str) else key
        self._lock = threading.Lock()
        self._default = self._checked(default_rules or {}, "default redaction rules")
        self._by_model: dict[str, dict[str, RedactionAction]] = {}
        self._merged: dict[str, dict[str, RedactionAction]] = {}
        for model, model_rules in (rules or {}).items():
            self.set_rules(model, model_rules)

    def _checked(self, rules: Mapping[str, str], where: str) -> dict[str, RedactionAction]:
        checked = validate_rules(rules, where=where)
        if "hash" in checked.values() and (self._key is None or len(self._key) < MIN_KEY_BYTES):
            raise ConfigError(
                f"{where}: 'hash' needs a secret key of at least {MIN_KEY_BYTES} bytes.",
                hint="Configure a redaction key (a long random secret); keep it out of the bundle and the logs.",
            )
        return checked

    def set_rules(self, model: str, rules: Mapping[str, str]) -> None:
        """Set ``model``'s own rules (replacing earlier ones), e.g. when its bundle is loaded."""
        checked = self._checked(rules, f"redaction rules of model {model!r}")
        with self._lock:
            self._by_model[model] = checked
            self._merged.pop(model, None)

    def rules_for(self, model: str) -> Mapping[str, RedactionAction]:
        """The effective rules of ``model``: the defaults, overridden by the model's own."""
        merged = self._merged.get(model)
        if merged is None:
            with self._lock:
                merged = {**self._default, **self._by_model.get(model, {})}
                self._merged[model] = merged
        return merged

    def is_active(self, model: str) -> bool:
        """Whether any rule applies to ``model``."""
        return bool(self.rules_for(model))

    def hash_value(self, value: Any) -> str:
        """``HMAC-SHA256(key, canonical_text(value))`` in hex."""
        if self._key is None:
            raise ConfigError("No redaction key is configured.", hint="Configure a redaction key to hash values.")
        return hmac.new(self._key, canonical_text(value).encode("utf-8"), hashlib.sha256).hexdigest()

    def redact_values(self, model: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``values`` (one row: column → value) with ``model``'s rules applied."""
        rules = self.rules_for(model)
        if not rules or not any(column in rules for column in values):
            return dict(values)
        out: dict[str, Any] = {}
        for column, value in values.items():
            action = rules.get(column)
            if action is None:
                out[column] = value
            elif action == "hash":
                out[column] = None if _is_missing(value) else self.hash_value(value)
            elif action == "mask":
                out[column] = None if _is_missing(value) else MASK
        return out

    def scrub_text(self, model: str, text: str, *sources: Mapping[str, Any] | None) -> str:
        """``text`` with every raw value of a redacted column (found in ``sources``) replaced by ``***``."""
        rules = self.rules_for(model)
        if not rules:
            return text
        for source in sources:
            for column, value in (source or {}).items():
                if column in rules and not _is_missing(value):
                    text = _scrub(text, value)
        return text


def _scrub(text: str, value: Any) -> str:
    plain = value.item() if isinstance(value, np.generic) else value
    forms = {str(plain), repr(plain), canonical_text(plain)}
    quoted = repr(plain)
    if len(quoted) > 60:
        forms.add(quoted[:57])  # coercion errors quote long values shortened to this prefix
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= 2:
            text = text.replace(form, MASK)
    return text
