"""`medai keys`: the key is printed once, stored hashed, listed, revoked; bad input is refused clearly."""
from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from libs.cli import app
from libs.config import AppSettings
from libs.launcher.devkey import ensure_dev_key
from libs.security.secret import load_secret
from libs.stores.db import open_database
from libs.stores.keys import KeyStore


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("APP_DATABASE_URL", "APP_STATE_DIR", "APP_DATA_DIR", "APP_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def authenticate(plaintext: str):
    async def run():
        settings = AppSettings()
        db = await open_database(settings.resolved_database_url())
        try:
            return await KeyStore(db, load_secret(settings)).authenticate(plaintext)
        finally:
            await db.close()

    return asyncio.run(run())


def test_create_prints_a_working_key_once(workdir):
    result = CliRunner().invoke(app, ["keys", "create", "--role", "clinician", "--name", "ward 5", "--models", "a,b"])
    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip().splitlines()[-1]
    key = authenticate(plaintext)
    assert (key.role, key.name, key.models) == ("clinician", "ward 5", ("a", "b"))
    assert (workdir / ".medai" / "secret.key").stat().st_mode & 0o077 == 0
    listing = CliRunner().invoke(app, ["keys", "list"])
    assert key.key_id in listing.stdout and plaintext not in listing.stdout


def test_revoke_then_key_is_refused(workdir):
    created = CliRunner().invoke(app, ["keys", "create", "--role", "admin", "--name", "n"])
    plaintext = created.stdout.strip().splitlines()[-1]
    key_id = authenticate(plaintext).key_id
    assert CliRunner().invoke(app, ["keys", "revoke", key_id]).exit_code == 0
    assert authenticate(plaintext) is None
    again = CliRunner().invoke(app, ["keys", "revoke", key_id])
    assert again.exit_code == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--role", "root", "--name", "n"], "unknown role"),
    (["--role", "admin", "--name", "n", "--expires", "soon"], "duration"),
    (["--role", "admin", "--name", "n", "--rpm", "0"], "--rpm"),
])
def test_bad_arguments_are_refused(workdir, args, message):
    result = CliRunner().invoke(app, ["keys", "create", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_expiring_key(workdir):
    result = CliRunner().invoke(app, ["keys", "create", "--role", "admin", "--name", "n", "--expires", "2h"])
    assert authenticate(result.stdout.strip().splitlines()[-1]).expires_at is not None


def test_per_key_limits_are_set_listed_and_updated(workdir):
    created = CliRunner().invoke(app, ["keys", "create", "--role", "service", "--name", "etl", "--rpm", "120",
                                       "--tpm", "5000"])
    assert created.exit_code == 0, created.output
    key = authenticate(created.stdout.strip().splitlines()[-1])
    assert (key.limits.requests_per_minute, key.limits.tokens_per_minute) == (120, 5000)
    assert f"{key.key_id}" in (listing := CliRunner().invoke(app, ["keys", "list"]).stdout)
    assert "rpm=120  tpm=5000" in listing
    updated = CliRunner().invoke(app, ["keys", "update", key.key_id, "--rpm", "30", "--tpm", "0"])
    assert updated.exit_code == 0, updated.output
    assert "rpm=30  tpm=-" in CliRunner().invoke(app, ["keys", "list"]).stdout
    assert CliRunner().invoke(app, ["keys", "update", "000000000000", "--rpm", "3"]).exit_code == 1
    assert CliRunner().invoke(app, ["keys", "update", key.key_id]).exit_code == 2


def test_dev_key_is_created_once_and_kept(workdir):
    settings = AppSettings()
    path, created = asyncio.run(ensure_dev_key(settings))
    assert created and path.stat().st_mode & 0o777 == 0o600
    first = path.read_text()
    assert authenticate(first.strip()).role == "admin"
    assert authenticate(first.strip()).limits.requests_per_minute is None  # the dev key is not rate-limited
    _, created_again = asyncio.run(ensure_dev_key(settings))
    assert not created_again and path.read_text() == first
    path.write_text("msk_000000000000_stale\n")  # e.g. the database was reset
    _, replaced = asyncio.run(ensure_dev_key(settings))
    assert replaced and authenticate(path.read_text().strip()) is not None
