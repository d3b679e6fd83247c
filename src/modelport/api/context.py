"""Where the programmatic API finds its settings and registry.

Settings are read from the environment here, at the edge, and passed down; nothing below this
layer reads ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelport.core.settings import Settings
from modelport.registry.registry import Registry


def resolve_settings(settings: Settings | None = None, *, home: Path | str | None = None) -> Settings:
    """The given settings, or settings from ``MODELPORT_*`` environment variables (``home`` overrides)."""
    base = settings if settings is not None else Settings()
    if home is not None:
        base = base.model_copy(update={"home": Path(home)})
    return base


def open_registry(settings: Settings | None = None) -> Registry:
    """A :class:`Registry` for ``settings`` (default: from the environment)."""
    return Registry(resolve_settings(settings))


@contextmanager
def registry_scope(settings: Settings | None, registry: Registry | None) -> Iterator[Registry]:
    """``registry`` as given (left open), or one opened for ``settings`` and closed on exit."""
    if registry is not None:
        yield registry
        return
    opened = open_registry(settings)
    try:
        yield opened
    finally:
        opened.close()
