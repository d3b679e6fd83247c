from __future__ import annotations

import inspect

import pytest

from modelport.core import errors
from modelport.core.redact import redact_url
from modelport.core.settings import Settings


def _all_error_classes() -> list[type[errors.ModelportError]]:
    return [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, errors.ModelportError)]


@pytest.mark.parametrize("cls", _all_error_classes())
def test_every_error_has_status_and_exit_code(cls: type[errors.ModelportError]) -> None:
    err = cls("something named 'x' is wrong", hint="do y")
    assert 400 <= cls.http_status < 600
    assert cls.exit_code >= 1
    assert err.to_dict() == {"error": "something named 'x' is wrong", "hint": "do y", "type": cls.__name__}
    assert "Hint: do y" in str(err)


def test_missing_dependency_names_the_extra() -> None:
    err = errors.MissingDependency.for_extra("xgboost", "xgboost")
    assert "pip install 'modelport[xgboost]'" in (err.hint or "")


def test_redact_url_hides_passwords() -> None:
    text = "cannot reach postgresql+psycopg://scott:tiger@db:5432/app and redis://:s3cret@cache:6379/0"
    out = redact_url(text)
    assert "tiger" not in out
    assert "s3cret" not in out
    assert "postgresql+psycopg://scott:***@db:5432/app" in out


def test_settings_defaults_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("MODELPORT_HOME", str(tmp_path))
    monkeypatch.setenv("MODELPORT_USER", "alice")
    settings = Settings()
    assert settings.actor == "alice"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("registry.db")
    monkeypatch.setenv("MODELPORT_DB_URL", "postgresql+psycopg://u:pw@h/db")
    assert Settings().database_url == "postgresql+psycopg://u:pw@h/db"
    assert "pw" not in repr(Settings())
