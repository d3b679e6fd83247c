"""Helpers for the governance CLI tests: checking results, issuing keys, acting as a user."""

from __future__ import annotations

from .conftest import CliResult, CliRunner


def ok(result: CliResult) -> CliResult:
    """Assert a command succeeded; return its result."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def refused(result: CliResult, *needles: str, code: int = 8) -> None:
    """A user mistake: the error's exit code, one ``error:`` line naming the problem, a hint, no traceback."""
    assert result.exit_code == code, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:"), result.stderr
    assert sum(line.startswith("error:") for line in lines) == 1
    assert any(line.startswith("hint:") for line in lines), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def issue_key(cli: CliRunner, *args: str) -> str:
    """Run a ``users ...`` command that issues a key and return the key."""
    token = ok(cli(*args, "--json")).json()["api_key"]
    assert token.startswith("mpk_")
    return str(token)


def acting_as(cli: CliRunner, key: str) -> CliRunner:
    """``cli`` with ``--api-key key`` before every command."""

    def run(*args: str) -> CliResult:
        return cli("--api-key", key, *args)

    return run
