"""Global CLI options (one flag per setting) and the objects commands share through the Typer context."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from modelport.core.settings import Settings


@dataclass
class CliState:
    """What the root callback parsed: settings built from flags over ``MODELPORT_*`` variables."""

    settings: Settings


def build_settings(
    home: Path | None,
    db_url: str | None,
    artifacts_url: str | None,
    user: str | None,
    trusted_pickle: bool | None,
    log_key: str | None = None,
    api_key: str | None = None,
) -> Settings:
    """Settings from the environment, with each given flag taking precedence."""
    given = {
        "home": home,
        "db_url": db_url,
        "artifacts_url": artifacts_url,
        "user": user,
        "api_key": api_key,
        "log_key": log_key,
        "trusted_pickle": trusted_pickle,
    }
    overrides = {name: value for name, value in given.items() if value is not None}
    return Settings(**overrides)  # type: ignore[arg-type]


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback stored on the context."""
    state = ctx.find_root().obj
    if isinstance(state, CliState):
        return state.settings
    return Settings()
