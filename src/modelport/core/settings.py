"""The one settings object. Built at the edge (CLI, ``api``), passed down as a parameter.

Every field reads from a ``MODELPORT_``-prefixed environment variable and has a CLI flag.
Layers below ``api`` never read the environment themselves.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """modelport configuration.

    Attributes:
        home: Folder for the embedded defaults: SQLite registry, artifact store, logs, caches.
        db_url: SQLAlchemy URL of the registry database; default SQLite in ``home``.
        artifacts_url: Folder or fsspec URL of the artifact store; default ``home/artifacts``.
        user: Actor recorded in the audit log; default the OS user.
        trusted_pickle: Allow loading plain pickle/joblib artifacts whose hash matches.
        api_key: The caller's API key (governance: who is acting, with which role).
        log_key: Secret for ``hash`` redaction of logged inputs; by default a random key is created
            once in ``home/secrets/log.key`` (mode 0600) so hashes stay joinable across restarts.
    """

    model_config = SettingsConfigDict(env_prefix="MODELPORT_", extra="ignore")

    home: Path = Field(default=Path(".modelport"), description="Folder for registry, artifacts and logs.")
    db_url: SecretStr | None = Field(default=None, description="Registry database URL (SQLAlchemy).")
    artifacts_url: str | None = Field(default=None, description="Artifact store folder or fsspec URL.")
    user: str | None = Field(default=None, description="Actor name recorded in the audit log.")
    trusted_pickle: bool = Field(default=False, description="Allow pickle/joblib artifacts (hash-checked).")
    api_key: SecretStr | None = Field(
        default=None, description="Your API key: identifies you to the registry's governance."
    )
    log_key: SecretStr | None = Field(
        default=None, description="Secret for keyed-HMAC redaction in the prediction log (default: a key kept in home)."
    )

    @property
    def database_url(self) -> str:
        """The registry database URL, defaulting to a SQLite file in ``home``."""
        if self.db_url is not None:
            return self.db_url.get_secret_value()
        return f"sqlite:///{(self.home / 'registry.db').resolve()}"

    @property
    def artifacts_location(self) -> str:
        """Where artifacts are stored, defaulting to ``home/artifacts``."""
        return self.artifacts_url or str((self.home / "artifacts").resolve())

    @property
    def actor(self) -> str:
        """Who is acting, for the audit log."""
        if self.user:
            return self.user
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"
