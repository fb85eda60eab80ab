"""`medai audit verify`: walk the audit chain (and its signed checkpoints) in the mesh's database.

Exit 0 when the chain is intact; 1 and the first broken record otherwise.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from libs.config import AppSettings, MedicalSettings
from libs.security.signing import load_verifier, public_path
from libs.stores.audit import AuditStore, Verification
from libs.stores.db import open_database

app = typer.Typer(help="Inspect the audit trail.", no_args_is_help=True)


async def verify_chain(database_url: str, key_files: list[Path]) -> Verification:
    db = await open_database(database_url)
    try:
        store = AuditStore(db)
        await store.migrate()
        verifier = load_verifier(*key_files) if key_files else None
        return await store.verify(
            (lambda c: verifier.valid(c.key_id, c.message(), c.signature)) if verifier is not None else None)
    finally:
        await db.close()


def _default_keys(app_settings: AppSettings, medical: MedicalSettings) -> list[Path]:
    private = medical.audit_signing_key_file or app_settings.state_dir / "audit-signing.key"
    return [path for path in (public_path(private), private) if path.exists()][:1]


@app.command()
def verify(
    public_key: Annotated[list[Path] | None, typer.Option(help="Checkpoint public key(s) (default: mesh's)")] = None,
) -> None:
    """Verify every record's hash and link, and every checkpoint's signature."""
    app_settings, medical = AppSettings(), MedicalSettings()
    result = asyncio.run(verify_chain(app_settings.resolved_database_url(),
                                      public_key or _default_keys(app_settings, medical)))
    if result.intact:
        typer.echo(f"audit chain intact: {result.records_checked} records, "
                   f"{result.checkpoints_checked} signed checkpoints")
        return
    typer.echo(f"audit chain BROKEN at record {result.first_broken_sequence}: {result.reason} "
               f"({result.records_checked} records verified before it)", err=True)
    raise typer.Exit(1)
