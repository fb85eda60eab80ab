"""`medai keys ...`: create, list and revoke API keys in the mesh's database."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

import typer

from libs.config import AppSettings
from libs.security.roles import ROLE_PERMISSIONS
from libs.security.secret import load_secret
from libs.stores.db import open_database
from libs.stores.keys import KeyLimits, KeyStore

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
RPM_HELP = "Requests per minute this key may send (default: its role's default, else unlimited)"
TPM_HELP = "Generated tokens per minute this key may use (default: its role's default, else unlimited)"


def _with_store(action: Callable[[KeyStore], Awaitable[T]]) -> T:
    async def run() -> T:
        settings = AppSettings()
        db = await open_database(settings.resolved_database_url())
        try:
            store = KeyStore(db, load_secret(settings))
            await store.migrate()
            return await action(store)
        finally:
            await db.close()

    return asyncio.run(run())


def parse_expiry(value: str | None) -> datetime | None:
    """'30d', '12h', '15m' from now, or an ISO-8601 time; None: never."""
    if not value:
        return None
    match = _DURATION.match(value)
    if match:
        return datetime.now(UTC) + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("use a duration like 30d, 12h, 15m or an ISO-8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def create(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLE_PERMISSIONS)}")],
    name: Annotated[str, typer.Option(help="Who or what the key is for")],
    models: Annotated[str, typer.Option(help="Comma-separated model ids this key may use (default: all)")] = "",
    expires: Annotated[str | None, typer.Option(help="Lifetime (30d, 12h) or ISO-8601 expiry")] = None,
    rpm: Annotated[int | None, typer.Option(min=1, help=RPM_HELP)] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help=TPM_HELP)] = None,
) -> None:
    """Create a key and print it once (it is stored only as a keyed hash)."""
    if role not in ROLE_PERMISSIONS:
        raise typer.BadParameter(f"unknown role (one of: {', '.join(ROLE_PERMISSIONS)})", param_hint="--role")
    model_ids = tuple(m.strip() for m in models.split(",") if m.strip())
    expiry = parse_expiry(expires)
    limits = KeyLimits(requests_per_minute=rpm, tokens_per_minute=tpm)
    key, plaintext = _with_store(lambda store: store.create(name=name, role=role, models=model_ids,
                                                            expires_at=expiry, limits=limits))
    typer.echo(f"created key {key.key_id} ({role}) for '{name}'; it is shown only this once:", err=True)
    typer.echo(plaintext)


@app.command("list")
def list_keys() -> None:
    """List keys (ids, names, roles, state; never secrets)."""
    now = datetime.now(UTC)
    for key in _with_store(lambda store: store.list()):
        state = "active" if key.active(now) else ("revoked" if key.revoked_at else "expired")
        expiry = key.expires_at.isoformat() if key.expires_at else "never"
        models = ",".join(key.models) or "*"
        limits = f"rpm={_limit(key.limits.requests_per_minute)}  tpm={_limit(key.limits.tokens_per_minute)}"
        typer.echo(f"{key.key_id}  {key.role:<10}  {state:<8}  expires={expiry}  models={models}  {limits}  "
                   f"name={key.name}")


def _limit(value: int | None) -> str:
    return str(value) if value is not None else "-"


@app.command()
def update(
    key_id: Annotated[str, typer.Argument(help="The key id shown by `medai keys list`")],
    rpm: Annotated[int | None, typer.Option(min=0, help="Requests per minute; 0 removes the key's own limit")] = None,
    tpm: Annotated[int | None, typer.Option(min=0, help="Generated tokens per minute; 0 removes it")] = None,
) -> None:
    """Change a key's own rate limits (gateways apply them within their key cache TTL)."""
    changes = {name: value or None for name, value in (("rpm", rpm), ("tpm", tpm)) if value is not None}
    if not changes:
        raise typer.BadParameter("give --rpm and/or --tpm")
    if not _with_store(lambda store: store.update_limits(key_id, changes)):
        typer.echo(f"no key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"updated {key_id}: " + ", ".join(f"{name}={value or 'none'}" for name, value in changes.items()))


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key id shown by `medai keys list`")]) -> None:
    """Revoke a key; gateways refuse it within their key cache TTL (1 s by default)."""
    if not _with_store(lambda store: store.revoke(key_id)):
        typer.echo(f"no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")
