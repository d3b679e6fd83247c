"""Model references: ``name``, ``name:3``, ``name@production`` or a bundle path."""

from __future__ import annotations

from dataclasses import dataclass

from modelport.core.errors import InvalidName
from modelport.core.names import validate_name


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference to one model version.

    Exactly one of ``version``, ``alias`` may be set; with neither, the reference means the
    ``production`` alias when there is one, else the latest version. ``path`` is set instead of
    ``name`` when the reference is a bundle folder on disk.
    """

    name: str | None = None
    version: int | None = None
    alias: str | None = None
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """Parse ``text``; anything with a path separator or a leading ``.`` is a bundle path.

        >>> ModelRef.parse("churn@production")
        ModelRef(name='churn', version=None, alias='production', path=None)
        """
        text = text.strip()
        if not text:
            raise InvalidName("Empty model reference.", hint="Use 'name', 'name:3', 'name@alias' or a bundle path.")
        if "/" in text or "\\" in text or text.startswith(".") or text.endswith((".tar.gz", ".tgz")):
            return cls(path=text)
        if "@" in text:
            name, _, alias = text.partition("@")
            return cls(name=validate_name(name), alias=validate_name(alias, what="alias"))
        if ":" in text:
            name, _, version = text.partition(":")
            if not version.isdigit() or int(version) < 1:
                raise InvalidName(
                    f"Invalid version {version!r} in reference {text!r}.",
                    hint="Versions are positive integers, e.g. 'churn:3'.",
                )
            return cls(name=validate_name(name), version=int(version))
        return cls(name=validate_name(text))

    @property
    def is_path(self) -> bool:
        """Whether this reference points at a bundle on disk rather than the registry."""
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return self.path
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return str(self.name)
