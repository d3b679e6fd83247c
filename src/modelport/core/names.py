"""The grammar of names: models, aliases, and the SQL identifiers users hand to batch jobs.

A name is never turned into a path or spliced into SQL before it passes these checks.
"""

from __future__ import annotations

import re

from modelport.core.errors import InvalidName

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
SQL_IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def validate_name(value: str, *, what: str = "model name") -> str:
    """Return ``value`` if it is a valid model or alias name, else raise :class:`InvalidName`.

    Names are 1-128 characters of lowercase letters, digits, ``.``, ``_`` and ``-``, start with a
    letter or digit, and never contain ``..``.
    """
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value) or ".." in value:
        raise InvalidName(
            f"Invalid {what} {value!r}.",
            hint="Use 1-128 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit, "
            "without '..' (e.g. 'churn-model').",
        )
    return value


def validate_sql_identifier(value: str, *, what: str = "table name") -> str:
    """Return ``value`` if it is a plain SQL identifier (optionally ``schema.table``), else raise."""
    parts = value.split(".") if isinstance(value, str) else [value]
    if len(parts) > 2 or not all(isinstance(p, str) and SQL_IDENTIFIER_PATTERN.fullmatch(p) for p in parts):
        raise InvalidName(
            f"Invalid {what} {value!r}.",
            hint="Use letters, digits and '_' only, starting with a letter or '_', at most 63 characters "
            "(optionally 'schema.table').",
        )
    return value
